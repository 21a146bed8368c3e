//! The gateway's side of its relays: one outbound TLS connection per relay, on which the relay
//! opens a `CONNECT` stream per CLI connection; inside each stream the gateway runs the
//! ordinary tunnel handshake and hands the tunnel to the proxy like a directly accepted one.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Notify};
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tower_service::Service;

use super::renewal::{IdentityCell, RelayIdentitySwap};
use super::{check_relay, fingerprint, headers, Keepalive, GATEWAY_ALPN};
use crate::kms::api::{GatewayReach, RelayLink};
use crate::session::{SessionError, SessionId, SessionManager, SessionStatus};
use crate::tls::{PrivateKeyPem, TlsError};
use crate::transport::tls::{authenticate, server_name_of, CONNECT_TIMEOUT, HANDSHAKE_TIMEOUT};
use crate::transport::{AcceptedTunnel, TransportError, TunnelAcceptor, TunnelPeer};

/// How long the gateway asks KMS about a session before opening a relayed stream; past it the
/// stream opens and the tunnel's own checks decide.
const PRECHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// Relayed streams one tunnel carries at once (the relay's own limit is the same by default).
const MAX_RELAYED_STREAMS: u32 = 10_000;
/// First pause after a failed dial; doubled per failure up to the cap, with jitter.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// How a gateway dials its relays.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DialOptions {
    /// The relays (`host:port`), each dialled and kept separately.
    pub relays: Vec<String>,
    /// HTTP/2 keepalive on each tunnel.
    pub keepalive: Keepalive,
    /// The longest pause between dials of a relay that cannot be reached.
    pub backoff_cap: Duration,
    /// Dial through the proxy `HTTPS_PROXY` names (honouring `NO_PROXY`).
    pub use_env_proxy: bool,
}

impl DialOptions {
    /// Dial `relays` with the default keepalive, a 30 s backoff cap and the environment's proxy.
    pub fn new(relays: Vec<String>) -> Self {
        Self {
            relays,
            keepalive: Keepalive::default(),
            backoff_cap: Duration::from_secs(30),
            use_env_proxy: true,
        }
    }
}

/// Which relays hold a live tunnel from this gateway now, for heartbeats and `/readyz`.
#[derive(Clone, Debug)]
pub struct RelayLinks {
    links: Arc<Vec<(String, AtomicBool)>>,
}

impl RelayLinks {
    /// The reach to report to KMS: `direct` when the gateway also listens.
    pub fn reach(&self, direct: bool) -> GatewayReach {
        GatewayReach {
            direct,
            relays: self
                .links
                .iter()
                .map(|(url, up)| RelayLink {
                    url: url.clone(),
                    connected: up.load(Ordering::Relaxed),
                })
                .collect(),
        }
    }

    /// How many relays hold a live tunnel.
    pub fn connected(&self) -> usize {
        self.links
            .iter()
            .filter(|(_, up)| up.load(Ordering::Relaxed))
            .count()
    }
}

/// The tunnels arriving through relays: a [`TunnelAcceptor`]. Dropping it stops every dial.
pub struct RelayTunnels {
    ready: mpsc::Receiver<AcceptedTunnel>,
    links: RelayLinks,
    identity: RelayIdentitySwap,
    _dials: Vec<AbortOnDropHandle<()>>,
}

impl RelayTunnels {
    /// The relays' live state.
    pub fn links(&self) -> RelayLinks {
        self.links.clone()
    }

    /// The handle that puts a renewed certificate into service.
    pub fn identity(&self) -> RelayIdentitySwap {
        self.identity.clone()
    }
}

impl std::fmt::Debug for RelayTunnels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayTunnels")
            .field("links", &self.links)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl TunnelAcceptor for RelayTunnels {
    async fn accept(&mut self) -> Result<AcceptedTunnel, TransportError> {
        self.ready.recv().await.ok_or(TransportError::Closed)
    }
}

/// What every dial and stream of one gateway shares.
pub(super) struct Dialer {
    pub(super) gateway: String,
    /// The gateway's identity, as the relays see it (outer) and as CLIs do (inner); swapped
    /// whole when the certificate is renewed.
    pub(super) cell: Arc<IdentityCell>,
    sessions: Arc<dyn SessionManager>,
    keepalive: Keepalive,
    backoff_cap: Duration,
    proxy: Option<Matcher>,
    ready: mpsc::Sender<AcceptedTunnel>,
}

/// Starts dialling `options.relays` as gateway `gateway` with its identity (`ca_pem`,
/// `cert_pem`, `key`: the same certificate serves the inner tunnel and authenticates the
/// gateway to the relay). Relayed streams are pre-checked with `sessions`.
///
/// # Errors
///
/// When the TLS material is unusable.
///
/// # Panics
///
/// When called outside a Tokio runtime, since it spawns the dials.
pub fn dial_relays(
    gateway: &str,
    ca_pem: &str,
    cert_pem: &str,
    key: &PrivateKeyPem,
    sessions: Arc<dyn SessionManager>,
    options: DialOptions,
) -> Result<RelayTunnels, TlsError> {
    let (ready_tx, ready) = mpsc::channel(64);
    let dialer = Arc::new(Dialer {
        gateway: gateway.to_owned(),
        cell: Arc::new(IdentityCell::new(ca_pem, cert_pem, key)?),
        sessions,
        keepalive: options.keepalive,
        backoff_cap: options.backoff_cap,
        proxy: options.use_env_proxy.then(Matcher::from_env),
        ready: ready_tx,
    });
    let links = RelayLinks {
        links: Arc::new(
            options
                .relays
                .iter()
                .map(|url| (url.clone(), AtomicBool::new(false)))
                .collect(),
        ),
    };
    let dials = (0..options.relays.len())
        .map(|index| {
            let task = Arc::clone(&dialer).keep_tunnel(links.clone(), index);
            AbortOnDropHandle::new(tokio::spawn(task))
        })
        .collect();
    Ok(RelayTunnels {
        ready,
        links,
        identity: RelayIdentitySwap::new(Arc::clone(&dialer.cell)),
        _dials: dials,
    })
}

/// How a tunnel ended.
enum Ended {
    /// The relay is draining: dial again at once, the old tunnel finishes its streams.
    Drained,
    /// The identity was renewed: the same, with the new certificate.
    Renewed,
    /// It failed or closed.
    Lost(String),
}

impl Dialer {
    /// Keeps one tunnel to relay `index` for as long as the gateway runs.
    async fn keep_tunnel(self: Arc<Self>, links: RelayLinks, index: usize) {
        let (relay, up) = &links.links[index];
        let mut failures = 0u32;
        loop {
            match self.dial(relay).await {
                Ok(tls) => {
                    failures = 0;
                    up.store(true, Ordering::Relaxed);
                    tracing::info!(%relay, "tunnel to relay up");
                    let ended = Arc::clone(&self).serve_tunnel(tls).await;
                    up.store(false, Ordering::Relaxed);
                    match ended {
                        Ended::Drained => {
                            tracing::info!(%relay, "relay draining; tunnelling again");
                            continue;
                        }
                        Ended::Renewed => {
                            tracing::info!(%relay, "certificate renewed; tunnelling again");
                            continue;
                        }
                        Ended::Lost(why) => {
                            tracing::warn!(%relay, reason = %why, "tunnel to relay lost")
                        }
                    }
                }
                Err(why) if failures == 0 => {
                    tracing::warn!(%relay, reason = %why, "cannot reach relay; retrying")
                }
                Err(why) => tracing::debug!(%relay, reason = %why, failures, "cannot reach relay"),
            }
            failures = failures.saturating_add(1);
            tokio::time::sleep(backoff(failures, self.backoff_cap)).await;
        }
    }

    /// TCP (through the proxy if one applies), TLS with the gateway's identity, and the check
    /// that the peer is a relay.
    async fn dial(
        &self,
        relay: &str,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
        let server_name = server_name_of(relay).map_err(|e| e.to_string())?;
        let tcp = timeout(CONNECT_TIMEOUT, self.tcp(relay))
            .await
            .map_err(|_| format!("no connection within {CONNECT_TIMEOUT:?}"))??;
        let _ = tcp.set_nodelay(true);
        let outer = self.cell.tls().0;
        let tls = timeout(HANDSHAKE_TIMEOUT, outer.connect(server_name, tcp))
            .await
            .map_err(|_| format!("no TLS handshake within {HANDSHAKE_TIMEOUT:?}"))?
            .map_err(|e| format!("TLS: {e}"))?;
        let connection = tls.get_ref().1;
        if connection.alpn_protocol() != Some(GATEWAY_ALPN) {
            return Err("the peer does not speak the relay protocol".to_owned());
        }
        check_relay(connection.peer_certificates())?;
        Ok(tls)
    }

    async fn tcp(&self, relay: &str) -> Result<TcpStream, String> {
        let target: http::Uri = format!("https://{relay}")
            .parse()
            .map_err(|e| format!("bad relay address: {e}"))?;
        match self.proxy.as_ref().and_then(|m| m.intercept(&target)) {
            Some(proxy) => {
                let mut tunnel = hyper_util::client::legacy::connect::proxy::Tunnel::new(
                    proxy.uri().clone(),
                    HttpConnector::new(),
                );
                if let Some(auth) = proxy.basic_auth() {
                    tunnel = tunnel.with_auth(auth.clone());
                }
                let io = tunnel
                    .call(target)
                    .await
                    .map_err(|e| format!("through proxy {}: {e}", proxy.uri()))?;
                Ok(io.into_inner())
            }
            None => TcpStream::connect(relay).await.map_err(|e| e.to_string()),
        }
    }

    /// Serves the relay's streams on one tunnel until it ends or the relay drains.
    async fn serve_tunnel(
        self: Arc<Self>,
        tls: tokio_rustls::client::TlsStream<TcpStream>,
    ) -> Ended {
        let drained = Arc::new(Notify::new());
        let (dialer, notice) = (Arc::clone(&self), Arc::clone(&drained));
        let service = service_fn(move |request| {
            let (dialer, notice) = (Arc::clone(&dialer), Arc::clone(&notice));
            async move { Ok::<_, Infallible>(dialer.stream(request, &notice).await) }
        });
        let connection = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(Some(self.keepalive.interval))
            .keep_alive_timeout(self.keepalive.timeout)
            .initial_stream_window_size(crate::net::http2::STREAM_WINDOW)
            .initial_connection_window_size(crate::net::http2::RELAY_CONNECTION_WINDOW)
            // Every CLI connection through this relay is one stream, open for the session's
            // life: hyper's default of 200 would make the 201st session wait for a slot.
            .max_concurrent_streams(MAX_RELAYED_STREAMS)
            .serve_connection(TokioIo::new(tls), service);
        // Its own task, so a tunnel being replaced keeps serving its streams while the new one
        // is dialled; told to close, it does so once they are done (HTTP/2 GOAWAY).
        let close = CancellationToken::new();
        let closing = close.clone();
        let mut served = tokio::spawn(async move {
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => result,
                () = closing.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            }
        });
        let mut renewed = self.cell.renewed.subscribe();
        renewed.mark_unchanged();
        let ended = tokio::select! {
            result = &mut served => return match result {
                Ok(Ok(())) => Ended::Lost("the relay closed it".to_owned()),
                Ok(Err(e)) => Ended::Lost(e.to_string()),
                Err(e) => Ended::Lost(e.to_string()),
            },
            () = drained.notified() => Ended::Drained,
            _ = renewed.changed() => Ended::Renewed,
        };
        close.cancel();
        ended
    }

    /// One request from the relay: a drain notice, or a CLI connection to take.
    async fn stream(
        self: &Arc<Self>,
        mut request: Request<Incoming>,
        drained: &Notify,
    ) -> Response<Empty<Bytes>> {
        match (request.method(), request.uri().path()) {
            (&Method::POST, headers::DRAIN_PATH) => {
                drained.notify_one();
                return answer(StatusCode::OK);
            }
            (&Method::CONNECT, _) => {}
            _ => return answer(StatusCode::NOT_FOUND),
        }
        let header = |name| {
            request
                .headers()
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        let (Some(session), Some(cert)) = (header(headers::SESSION), header(headers::CLIENT_CERT))
        else {
            return answer(StatusCode::BAD_REQUEST);
        };
        let client: Option<SocketAddr> =
            header(headers::CLIENT_ADDR).and_then(|addr| addr.parse().ok());
        if let Some((code, reason)) = self.precheck(&SessionId::new(session)).await {
            let mut response = answer(StatusCode::FORBIDDEN);
            let values = [(headers::REFUSAL, code), (headers::REASON, reason.as_str())];
            for (name, value) in values {
                if let Ok(value) = HeaderValue::from_str(value) {
                    response.headers_mut().insert(name, value);
                }
            }
            return response;
        }
        let upgrade = hyper::upgrade::on(&mut request);
        let dialer = Arc::clone(self);
        tokio::spawn(async move {
            match upgrade.await {
                Ok(upgraded) => dialer.inner(upgraded, &cert, client).await,
                Err(e) => tracing::debug!(error = %e, "relayed stream not upgraded"),
            }
        });
        answer(StatusCode::OK)
    }

    /// Refuses a stream early, with a reason the relay passes on, when KMS says the session
    /// cannot be used here. When KMS cannot answer, the stream opens and the tunnel's own checks
    /// decide.
    async fn precheck(&self, id: &SessionId) -> Option<(&'static str, String)> {
        let looked_up = timeout(PRECHECK_TIMEOUT, self.sessions.get(id))
            .await
            .ok()?;
        match looked_up {
            Ok(session) if session.gateway != self.gateway => Some((
                "forbidden",
                format!("session {id} is not for gateway {}", self.gateway),
            )),
            Ok(session) => match session.status {
                SessionStatus::Active if session.expires_at > SystemTime::now() => None,
                SessionStatus::Active | SessionStatus::Expired => {
                    Some(("expired", format!("session {id} expired")))
                }
                status => Some(("revoked", format!("session {id} is {status}"))),
            },
            Err(SessionError::NotActive { status, .. }) => {
                Some(("revoked", format!("session {id} is {status}")))
            }
            Err(SessionError::NotFound(_)) => {
                Some(("forbidden", format!("session {id} is unknown here")))
            }
            Err(_) => None,
        }
    }

    /// The inner tunnel handshake on a relayed stream; the tunnel joins the others when the
    /// certificate inside is the one the relay authenticated.
    async fn inner(
        &self,
        upgraded: hyper::upgrade::Upgraded,
        cert: &str,
        client: Option<SocketAddr>,
    ) {
        let inner = self.cell.tls().1;
        let accepted = timeout(HANDSHAKE_TIMEOUT, inner.accept(TokioIo::new(upgraded))).await;
        let tls = match accepted {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => return tracing::warn!(error = %e, "relayed tunnel TLS handshake failed"),
            Err(_) => return tracing::warn!("relayed tunnel: no TLS handshake in time"),
        };
        let connection = tls.get_ref().1;
        let peer_certs = connection.peer_certificates();
        let identity = match authenticate(connection.alpn_protocol(), peer_certs, &self.gateway) {
            Ok(identity) => identity,
            Err(refusal) => return tracing::warn!(reason = %refusal, "relayed tunnel refused"),
        };
        let inside = peer_certs.and_then(|c| c.first()).map(fingerprint);
        if inside.as_deref() != Some(cert) {
            return tracing::warn!(session = %identity.session_id,
                "relayed tunnel refused: the certificate inside differs from the one the relay authenticated");
        }
        let tunnel = AcceptedTunnel {
            io: Box::new(tls),
            peer: TunnelPeer {
                session_id: SessionId::new(identity.session_id),
                remote_addr: client,
                not_after: Some(identity.not_after),
            },
        };
        // Fails only when the gateway stopped, and then the tunnel is dropped as it should be.
        let _ = self.ready.send(tunnel).await;
    }
}

fn answer(status: StatusCode) -> Response<Empty<Bytes>> {
    let mut response = Response::new(Empty::new());
    *response.status_mut() = status;
    response
}

/// The pause before dial number `failures + 1`: exponential from 500 ms, capped, and jittered
/// down to half so gateways that lost the same relay do not dial back in step.
pub(crate) fn backoff(failures: u32, cap: Duration) -> Duration {
    let exponential = FIRST_BACKOFF
        .saturating_mul(1u32 << failures.min(16))
        .min(cap);
    let jitter = f64::from(uuid::Uuid::new_v4().as_u128() as u16) / f64::from(u16::MAX);
    exponential.mul_f64(0.5 + jitter / 2.0)
}
