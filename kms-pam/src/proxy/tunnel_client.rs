//! The local proxy's side of the tunnel: ordinary requests are multiplexed over one long-lived
//! HTTP/2 connection (one handshake for a whole kubectl session, not one per request); requests
//! that upgrade (exec, attach, port-forward) get a dedicated HTTP/1.1 tunnel connection each,
//! because HTTP/2 cannot carry an HTTP/1.1 upgrade.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::{BoxFuture, FutureExt, Shared};

use http::uri::PathAndQuery;
use http::{Request, Response, Uri, Version};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::time::Instant;

use super::body::ProxyBody;
use super::error::{ErrorSource, ProxyError};
use super::upstream::error_chain;
use crate::transport::{BoxedIo, GatewayTransport, TransportError};

/// HTTP/2 keep-alive on the tunnel: a dead gateway is noticed within interval + timeout.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(20);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// After a failed dial, requests fail at once with its error for this long (doubling per failure
/// up to [`MAX_REDIAL_BACKOFF`]); the first request after it dials again.
const MIN_REDIAL_BACKOFF: Duration = Duration::from_millis(250);
const MAX_REDIAL_BACKOFF: Duration = Duration::from_secs(5);

type Sender = http2::SendRequest<ProxyBody>;
/// One dial of the shared connection, awaited by every request that needs it meanwhile.
type Dial = Shared<BoxFuture<'static, Result<Sender, DialFailure>>>;

/// The shared connection's state. Dials happen outside the lock: requests of a session never
/// queue behind one another's dial.
enum Conn {
    Idle,
    Ready(Sender),
    Dialing(Dial),
    Failed {
        failure: DialFailure,
        retry_at: Instant,
    },
}

/// A dial's failure, kept to answer the requests that arrive during the backoff.
#[derive(Clone, Debug)]
struct DialFailure {
    source: ErrorSource,
    status: http::StatusCode,
    message: Arc<str>,
}

impl DialFailure {
    fn from_error(error: &ProxyError) -> Self {
        Self {
            source: error.source_kind(),
            status: error.status(),
            message: error.message().into(),
        }
    }

    fn to_error(&self) -> ProxyError {
        ProxyError::new(self.source, self.status, &*self.message)
    }
}

struct State {
    conn: Conn,
    backoff: Duration,
}

/// Sends requests to the gateway through a [`GatewayTransport`].
pub(crate) struct TunnelClient {
    transport: Arc<dyn GatewayTransport>,
    state: Mutex<State>,
}

impl TunnelClient {
    /// A client dialling through `transport` on first use.
    pub(crate) fn new(transport: Arc<dyn GatewayTransport>) -> Self {
        Self {
            transport,
            state: Mutex::new(State {
                conn: Conn::Idle,
                backoff: MIN_REDIAL_BACKOFF,
            }),
        }
    }

    /// Sends an ordinary request over the shared connection, reconnecting once if the connection
    /// turns out to be gone before the request left.
    pub(crate) async fn send(
        &self,
        request: Request<ProxyBody>,
    ) -> Result<Response<Incoming>, ProxyError> {
        let mut request = into_tunnel_form(request, Version::HTTP_2)?;
        for attempt in 0..2 {
            let mut sender = self.sender(attempt > 0).await?;
            match sender.try_send_request(request).await {
                Ok(response) => return Ok(response),
                Err(mut e) => match e.take_message() {
                    Some(unsent) if attempt == 0 => request = unsent,
                    _ => return Err(tunnel_failed(e.error())),
                },
            }
        }
        Err(ProxyError::tunnel(
            "the tunnel to the gateway keeps closing",
        ))
    }

    /// Sends a request that upgrades the connection over a tunnel connection of its own.
    pub(crate) async fn send_upgrade(
        &self,
        request: Request<ProxyBody>,
    ) -> Result<Response<Incoming>, ProxyError> {
        let request = into_tunnel_form(request, Version::HTTP_11)?;
        let io = self.upgrade_dial().await?;
        let (mut sender, connection) = http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| tunnel_failed(&e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.with_upgrades().await {
                tracing::debug!(error = %e, "upgraded tunnel connection ended");
            }
        });
        sender
            .send_request(request)
            .await
            .map_err(|e| tunnel_failed(&e))
    }

    /// The shared connection: the live one, the dial in progress, or a new dial; during the
    /// backoff after a failed dial, that failure at once.
    async fn sender(&self, fresh: bool) -> Result<Sender, ProxyError> {
        let dial = {
            let mut state = self.lock();
            match &state.conn {
                Conn::Ready(sender) if !fresh && !sender.is_closed() => return Ok(sender.clone()),
                Conn::Dialing(dial) => dial.clone(),
                Conn::Failed { failure, retry_at } if Instant::now() < *retry_at => {
                    return Err(failure.to_error());
                }
                _ => {
                    let dial = self.start_dial();
                    state.conn = Conn::Dialing(dial.clone());
                    dial
                }
            }
        };
        let outcome = dial.clone().await;
        let mut state = self.lock();
        if matches!(&state.conn, Conn::Dialing(current) if current.ptr_eq(&dial)) {
            state.conn = match &outcome {
                Ok(sender) => {
                    state.backoff = MIN_REDIAL_BACKOFF;
                    Conn::Ready(sender.clone())
                }
                Err(failure) => {
                    let retry_at = Instant::now() + state.backoff;
                    state.backoff = (state.backoff * 2).min(MAX_REDIAL_BACKOFF);
                    Conn::Failed {
                        failure: failure.clone(),
                        retry_at,
                    }
                }
            };
        }
        outcome.map_err(|failure| failure.to_error())
    }

    fn start_dial(&self) -> Dial {
        let transport = self.transport.clone();
        async move {
            let handshake = async {
                let io = dial(&*transport).await?;
                let (sender, connection) = http2::Builder::new(TokioExecutor::new())
                    .timer(TokioTimer::new())
                    .initial_stream_window_size(crate::net::http2::STREAM_WINDOW)
                    .initial_connection_window_size(crate::net::http2::CONNECTION_WINDOW)
                    .max_header_list_size(crate::net::http2::MAX_HEADER_LIST_SIZE)
                    .keep_alive_interval(KEEP_ALIVE_INTERVAL)
                    .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
                    .handshake(TokioIo::new(io))
                    .await
                    .map_err(|e| tunnel_failed(&e))?;
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(error = %e, "tunnel connection ended");
                    }
                });
                Ok::<_, ProxyError>(sender)
            };
            handshake.await.map_err(|e| DialFailure::from_error(&e))
        }
        .boxed()
        .shared()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every update is one assignment: a poisoned state is still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A tunnel connection of its own for an upgrade, under the shared connection's backoff:
    /// during the backoff after a failed dial it fails at once with that failure; while the shared
    /// connection is being dialled, it waits for that dial's outcome first; its own failed dial
    /// starts a backoff unless the shared connection is up.
    async fn upgrade_dial(&self) -> Result<BoxedIo, ProxyError> {
        let pending = {
            let state = self.lock();
            match &state.conn {
                Conn::Failed { failure, retry_at } if Instant::now() < *retry_at => {
                    return Err(failure.to_error());
                }
                Conn::Dialing(dial) => Some(dial.clone()),
                _ => None,
            }
        };
        if let Some(dial) = pending {
            dial.await.map_err(|failure| failure.to_error())?;
        }
        let error = match dial(&*self.transport).await {
            Ok(io) => return Ok(io),
            Err(error) => error,
        };
        let mut state = self.lock();
        if matches!(state.conn, Conn::Idle | Conn::Failed { .. }) {
            let retry_at = Instant::now() + state.backoff;
            state.backoff = (state.backoff * 2).min(MAX_REDIAL_BACKOFF);
            state.conn = Conn::Failed {
                failure: DialFailure::from_error(&error),
                retry_at,
            };
        }
        Err(error)
    }
}

async fn dial(transport: &dyn GatewayTransport) -> Result<BoxedIo, ProxyError> {
    transport.connect().await.map_err(|e| match e {
        TransportError::Refused(reason) => {
            ProxyError::session(format!("the gateway refused this session: {reason}"))
        }
        other => ProxyError::tunnel(format!(
            "{other}; check that the kms-pam gateway is running and reachable"
        )),
    })
}

/// HTTP/2 needs an absolute URI (`:scheme`, `:authority`); the gateway only looks at the path.
fn into_tunnel_form(
    mut request: Request<ProxyBody>,
    version: Version,
) -> Result<Request<ProxyBody>, ProxyError> {
    let pq = request
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    *request.uri_mut() = if version == Version::HTTP_2 {
        Uri::builder()
            .scheme("http")
            .authority("kms-pam.gateway")
            .path_and_query(pq)
            .build()
            .map_err(|e| ProxyError::bad_request(format!("request cannot be forwarded: {e}")))?
    } else {
        Uri::from(pq)
    };
    *request.version_mut() = version;
    if version == Version::HTTP_11 {
        request.headers_mut().insert(
            http::header::HOST,
            http::HeaderValue::from_static("kms-pam.gateway"),
        );
    }
    Ok(request)
}

/// A refusal that surfaced only on the first read (TLS 1.3 reports client-certificate problems
/// after the client's handshake completed) is a session problem, not a broken tunnel.
fn tunnel_failed(error: &hyper::Error) -> ProxyError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(TransportError::Refused(reason)) = e.downcast_ref::<TransportError>() {
            return ProxyError::session(format!("the gateway refused this session: {reason}"));
        }
        source = e.source();
    }
    ProxyError::tunnel(format!(
        "the tunnel to the gateway failed: {}",
        error_chain(error)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::body;
    use crate::transport::MockGatewayTransport;
    use http::StatusCode;

    async fn send_through(transport: MockGatewayTransport) -> ProxyError {
        let client = TunnelClient::new(Arc::new(transport));
        let request = Request::get("/api/v1/namespaces/default/pods")
            .body(body::empty())
            .expect("request");
        client.send(request).await.expect_err("the request fails")
    }

    #[tokio::test]
    async fn a_refused_tunnel_is_a_401_naming_the_reason() {
        let mut transport = MockGatewayTransport::new();
        transport
            .expect_connect()
            .times(1)
            .returning(|| Err(TransportError::refused("certificate expired")));
        let error = send_through(transport).await;
        assert_eq!(error.status(), StatusCode::UNAUTHORIZED);
        assert!(
            error
                .message()
                .contains("the gateway refused this session: certificate expired"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn an_unreachable_gateway_is_a_502_saying_what_to_check() {
        let mut transport = MockGatewayTransport::new();
        transport
            .expect_connect()
            .returning(|| Err(TransportError::unreachable("connection refused")));
        let error = send_through(transport).await;
        assert_eq!(error.status(), StatusCode::BAD_GATEWAY);
        assert!(
            error.message().contains("gateway is running and reachable"),
            "{error}"
        );
    }

    /// A gateway that is down, then comes back: dials are counted; while `up` is false a dial
    /// takes `delay` and fails; once up, it connects to an HTTP/2 server answering 200.
    struct FlakyGateway {
        dials: std::sync::atomic::AtomicUsize,
        up: std::sync::atomic::AtomicBool,
        delay: Duration,
    }

    #[async_trait::async_trait]
    impl GatewayTransport for FlakyGateway {
        async fn connect(&self) -> Result<BoxedIo, TransportError> {
            use std::sync::atomic::Ordering;
            self.dials.fetch_add(1, Ordering::SeqCst);
            if !self.up.load(Ordering::SeqCst) {
                tokio::time::sleep(self.delay).await;
                return Err(TransportError::unreachable("connect timed out"));
            }
            let (client, server) = tokio::io::duplex(64 * 1024);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_request| async {
                    Ok::<_, std::convert::Infallible>(Response::new(body::empty()))
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(server), service)
                    .await;
            });
            Ok(Box::new(client))
        }
    }

    fn get() -> Request<ProxyBody> {
        Request::get("/api/v1/pods")
            .body(body::empty())
            .expect("request")
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_requests_share_one_dial_and_fail_fast_during_the_backoff() {
        use std::sync::atomic::Ordering;
        let gateway = Arc::new(FlakyGateway {
            dials: Default::default(),
            up: Default::default(),
            delay: Duration::from_secs(10),
        });
        let client = Arc::new(TunnelClient::new(gateway.clone()));
        let started = tokio::time::Instant::now();
        let requests: Vec<_> = (0..20)
            .map(|_| {
                let client = client.clone();
                tokio::spawn(async move { client.send(get()).await })
            })
            .collect();
        for request in requests {
            let error = request.await.expect("join").expect_err("gateway down");
            assert_eq!(error.status(), StatusCode::BAD_GATEWAY);
        }
        // One dial for all twenty, not twenty dials one after another behind a lock.
        assert_eq!(gateway.dials.load(Ordering::SeqCst), 1);
        assert!(
            started.elapsed() < Duration::from_secs(11),
            "{:?}",
            started.elapsed()
        );

        // Within the backoff: answered at once, nothing dialled.
        let before = tokio::time::Instant::now();
        let error = client.send(get()).await.expect_err("still backing off");
        assert_eq!(error.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(before.elapsed(), Duration::ZERO);
        assert_eq!(gateway.dials.load(Ordering::SeqCst), 1);

        // The gateway recovers: after the backoff the next request dials again and succeeds.
        gateway.up.store(true, Ordering::SeqCst);
        tokio::time::sleep(MIN_REDIAL_BACKOFF).await;
        let response = client.send(get()).await.expect("re-dialled");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(gateway.dials.load(Ordering::SeqCst), 2);
        let again = client.send(get()).await.expect("shared connection reused");
        assert_eq!(again.status(), StatusCode::OK);
        assert_eq!(gateway.dials.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn upgrades_honour_the_backoff_and_start_one_when_their_dial_fails() {
        use std::sync::atomic::Ordering;
        let gateway = Arc::new(FlakyGateway {
            dials: Default::default(),
            up: Default::default(),
            delay: Duration::from_secs(10),
        });
        let client = TunnelClient::new(gateway.clone());
        let exec = || {
            Request::get("/api/v1/namespaces/default/pods/p/exec?command=sh")
                .header("connection", "upgrade")
                .header("upgrade", "websocket")
                .body(body::empty())
                .expect("request")
        };
        client.send(get()).await.expect_err("gateway down");
        assert_eq!(gateway.dials.load(Ordering::SeqCst), 1);

        // Within the backoff an exec fails at once with the dial's failure, and dials nothing.
        let before = tokio::time::Instant::now();
        let error = client.send_upgrade(exec()).await.expect_err("backing off");
        assert_eq!(error.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(before.elapsed(), Duration::ZERO);
        assert_eq!(gateway.dials.load(Ordering::SeqCst), 1);

        // After it, the exec dials; its failure starts the next backoff for everyone.
        tokio::time::sleep(MIN_REDIAL_BACKOFF).await;
        client.send_upgrade(exec()).await.expect_err("gateway down");
        assert_eq!(gateway.dials.load(Ordering::SeqCst), 2);
        let before = tokio::time::Instant::now();
        client.send(get()).await.expect_err("backing off");
        client.send_upgrade(exec()).await.expect_err("backing off");
        assert_eq!(before.elapsed(), Duration::ZERO);
        assert_eq!(gateway.dials.load(Ordering::SeqCst), 2);

        // The gateway recovers: after the (doubled) backoff, requests dial again and succeed.
        gateway.up.store(true, Ordering::SeqCst);
        tokio::time::sleep(MIN_REDIAL_BACKOFF * 2).await;
        let response = client.send(get()).await.expect("re-dialled");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(gateway.dials.load(Ordering::SeqCst), 3);
    }
}
