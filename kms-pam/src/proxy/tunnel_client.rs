//! The local proxy's side of the tunnel: ordinary requests are multiplexed over one long-lived
//! HTTP/2 connection (one handshake for a whole kubectl session, not one per request); requests
//! that upgrade (exec, attach, port-forward) get a dedicated HTTP/1.1 tunnel connection each,
//! because HTTP/2 cannot carry an HTTP/1.1 upgrade.

use std::sync::Arc;
use std::time::Duration;

use http::uri::PathAndQuery;
use http::{Request, Response, Uri, Version};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::sync::Mutex;

use super::body::ProxyBody;
use super::error::ProxyError;
use super::upstream::error_chain;
use crate::transport::{BoxedIo, GatewayTransport, TransportError};

/// HTTP/2 keep-alive on the tunnel: a dead gateway is noticed within interval + timeout.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(20);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends requests to the gateway through a [`GatewayTransport`].
pub struct TunnelClient {
    transport: Arc<dyn GatewayTransport>,
    shared: Mutex<Option<http2::SendRequest<ProxyBody>>>,
}

impl TunnelClient {
    /// A client dialling through `transport` on first use.
    pub fn new(transport: Arc<dyn GatewayTransport>) -> Self {
        Self {
            transport,
            shared: Mutex::new(None),
        }
    }

    /// Sends an ordinary request over the shared connection, reconnecting once if the connection
    /// turns out to be gone before the request left.
    pub async fn send(
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
    pub async fn send_upgrade(
        &self,
        request: Request<ProxyBody>,
    ) -> Result<Response<Incoming>, ProxyError> {
        let request = into_tunnel_form(request, Version::HTTP_11)?;
        let io = self.dial().await?;
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

    async fn sender(&self, fresh: bool) -> Result<http2::SendRequest<ProxyBody>, ProxyError> {
        let mut shared = self.shared.lock().await;
        if let Some(sender) = shared.as_ref() {
            if !fresh && !sender.is_closed() {
                return Ok(sender.clone());
            }
        }
        let io = self.dial().await?;
        let (sender, connection) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .initial_stream_window_size(super::http2::STREAM_WINDOW)
            .initial_connection_window_size(super::http2::CONNECTION_WINDOW)
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
        *shared = Some(sender.clone());
        Ok(sender)
    }

    async fn dial(&self) -> Result<BoxedIo, ProxyError> {
        self.transport.connect().await.map_err(|e| match e {
            TransportError::Refused(reason) => {
                ProxyError::session(format!("the gateway refused this session: {reason}"))
            }
            other => ProxyError::tunnel(format!(
                "{other}; check that the kms-pam gateway is running and reachable"
            )),
        })
    }
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
            .returning(|| Err(TransportError::Refused("certificate expired".into())));
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
            .returning(|| Err(TransportError::Unreachable("connection refused".into())));
        let error = send_through(transport).await;
        assert_eq!(error.status(), StatusCode::BAD_GATEWAY);
        assert!(
            error.message().contains("gateway is running and reachable"),
            "{error}"
        );
    }
}
