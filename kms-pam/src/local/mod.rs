//! The CLI's loopback proxy: HTTPS on 127.0.0.1 with a per-session certificate, accepting only
//! requests that carry the session's local bearer token (security invariant 5, docs/security.md), forwarding through the tunnel.
//!
//! `serve(listener, config, shutdown)` is the whole proxy; the CLI's `pam access` only prepares
//! the listener, the certificate and the transport.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::proxy::{LocalProxy, ProxyHooks};
use crate::secret::Secret;
use crate::transport::GatewayTransport;

/// How long a client gets to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the loopback proxy needs.
#[non_exhaustive]
pub struct LocalProxyConfig {
    /// The bearer token written into the session kubeconfig.
    pub local_token: Secret,
    /// The TLS server configuration (see [`crate::tls::LocalServingCert`]).
    pub tls: Arc<rustls::ServerConfig>,
    /// How to reach the gateway for this session.
    pub transport: Arc<dyn GatewayTransport>,
    /// Stages run before a request leaves this machine (e.g. to refuse a verb locally).
    pub stages: Vec<Arc<dyn ProxyHooks>>,
}

impl LocalProxyConfig {
    /// A proxy demanding `local_token`, serving `tls`, forwarding through `transport`.
    pub fn new(
        local_token: Secret,
        tls: Arc<rustls::ServerConfig>,
        transport: Arc<dyn GatewayTransport>,
    ) -> Self {
        Self {
            local_token,
            tls,
            transport,
            stages: Vec::new(),
        }
    }

    /// Adds a stage run after the local-token check, before the tunnel.
    pub fn with_stage(mut self, stage: Arc<dyn ProxyHooks>) -> Self {
        self.stages.push(stage);
        self
    }
}

impl std::fmt::Debug for LocalProxyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalProxyConfig")
            .field("stages", &self.stages.len())
            .finish_non_exhaustive()
    }
}

/// Errors that stop the loopback proxy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalProxyError {
    /// The listener is not on a loopback address.
    #[error("the local proxy must listen on a loopback address, not {0}")]
    NotLoopback(std::net::SocketAddr),
    /// The listener failed.
    #[error("local proxy listener failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Serves kubectl on `listener` until `shutdown` resolves.
pub async fn serve<F>(
    listener: TcpListener,
    config: LocalProxyConfig,
    shutdown: F,
) -> Result<(), LocalProxyError>
where
    F: Future<Output = ()>,
{
    let addr = listener.local_addr()?;
    if !addr.ip().is_loopback() {
        return Err(LocalProxyError::NotLoopback(addr));
    }
    let proxy = config.stages.into_iter().fold(
        LocalProxy::new(config.local_token, config.transport),
        |p, s| p.with_stage(s),
    );
    let proxy = Arc::new(proxy);
    let acceptor = TlsAcceptor::from(config.tls);
    let stopping = CancellationToken::new();
    let tasks = TaskTracker::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            (tcp, peer) = crate::net::conn::accept(&listener, "local proxy") => {
                let (acceptor, proxy, stopping) = (acceptor.clone(), proxy.clone(), stopping.clone());
                tasks.spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => serve_connection(tls, proxy, stopping).await,
                        Ok(Err(e)) => tracing::info!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    stopping.cancel();
    tasks.close();
    tasks.wait().await;
    Ok(())
}

async fn serve_connection(
    tls: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    proxy: Arc<LocalProxy>,
    stopping: CancellationToken,
) {
    let service = service_fn(move |request| {
        let proxy = proxy.clone();
        async move { Ok::<_, Infallible>(proxy.handle(request).await) }
    });
    let limits = crate::net::conn::HttpLimits::LOCAL;
    crate::net::conn::serve_http(tls, service, limits, stopping.cancelled_owned()).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::memory::memory_gateway;

    #[tokio::test]
    async fn refuses_a_non_loopback_listener() {
        let listener = TcpListener::bind("0.0.0.0:0").await.expect("bind");
        let (gateway, _acceptor) = memory_gateway();
        let cert = crate::tls::LocalServingCert::generate(Duration::from_secs(60)).expect("cert");
        let config = LocalProxyConfig::new(
            Secret::random(32).unwrap(),
            cert.server_config().expect("tls"),
            Arc::new(gateway.connector(crate::session::SessionId::new("s"))),
        );
        let result = serve(listener, config, std::future::ready(())).await;
        assert!(
            matches!(result, Err(LocalProxyError::NotLoopback(addr)) if addr.ip().is_unspecified()),
            "{result:?}"
        );
    }
}
