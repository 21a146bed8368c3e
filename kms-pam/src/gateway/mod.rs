//! The gateway service: accepts authenticated tunnels and serves their requests with the
//! [`crate::proxy::GatewayProxy`].
//!
//! `serve(acceptor, config, shutdown)` is the whole gateway; the `kms-pam-gateway` binary only
//! builds its arguments.

pub mod kms_mode;
pub mod mtls;
mod registry;
pub mod standalone;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use registry::SessionRegistry;

use crate::audit::AuditSink;
use crate::credential::CredentialStore;
use crate::metrics::GatewayMetrics;
use crate::proxy::{rescue, GatewayProxy, ProxyHooks};
use crate::session::SessionManager;
use crate::transport::{AcceptedTunnel, TransportError, TunnelAcceptor};

/// How long open requests get to finish when a session is cut or the gateway stops, before their
/// connections are closed.
const DRAIN: Duration = Duration::from_millis(500);

/// Streams per tunnel connection: one kubectl can hold thousands of watches open over one tunnel.
const MAX_STREAMS_PER_TUNNEL: u32 = 65_536;

/// What a gateway is made of.
pub struct GatewayConfig {
    /// This gateway's name; sessions bound to another gateway are refused.
    pub name: String,
    /// Where sessions are looked up and watched.
    pub sessions: Arc<dyn SessionManager>,
    /// Where account credentials come from.
    pub credentials: Arc<dyn CredentialStore>,
    /// Where audit events go.
    pub audit: Arc<dyn AuditSink>,
    /// Embedder hooks.
    pub hooks: Arc<dyn ProxyHooks>,
    /// Counters and gauges (serve them with [`crate::metrics::serve`]).
    pub metrics: Arc<GatewayMetrics>,
}

/// Errors that stop a gateway.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The tunnel listener failed.
    #[error("tunnel listener failed: {0}")]
    Listener(#[from] TransportError),
    /// The configuration cannot be used.
    #[error("invalid gateway configuration: {0}")]
    Config(String),
}

/// Serves tunnels from `acceptor` until `shutdown` resolves (or the acceptor closes), then stops
/// accepting, gives open requests a moment, closes what is left and flushes the audit sink.
pub async fn serve<A, F>(
    mut acceptor: A,
    config: GatewayConfig,
    shutdown: F,
) -> Result<(), GatewayError>
where
    A: TunnelAcceptor,
    F: Future<Output = ()>,
{
    let registry = SessionRegistry::new(
        config.name.clone(),
        config.sessions,
        config.credentials,
        config.audit.clone(),
        config.metrics.clone(),
    );
    let proxy = Arc::new(GatewayProxy::new(
        config.audit.clone(),
        config.metrics.clone(),
        config.hooks,
    ));
    let stopping = CancellationToken::new();
    let tasks = TaskTracker::new();
    tokio::pin!(shutdown);
    let outcome = loop {
        tokio::select! {
            accepted = acceptor.accept() => match accepted {
                Ok(tunnel) => {
                    let (registry, proxy, stopping) = (registry.clone(), proxy.clone(), stopping.clone());
                    tasks.spawn(serve_tunnel(tunnel, registry, proxy, stopping));
                }
                Err(TransportError::Closed) => break Ok(()),
                Err(e) => break Err(GatewayError::Listener(e)),
            },
            () = &mut shutdown => break Ok(()),
        }
    };
    stopping.cancel();
    tasks.close();
    tasks.wait().await;
    if let Err(e) = config.audit.flush().await {
        tracing::error!(error = %e, "audit flush at shutdown failed");
    }
    outcome
}

async fn serve_tunnel(
    tunnel: AcceptedTunnel,
    registry: Arc<SessionRegistry>,
    proxy: Arc<GatewayProxy>,
    stopping: CancellationToken,
) {
    let peer = tunnel.peer;
    let io = TokioIo::new(tunnel.io);
    match registry.attach(&peer).await {
        Ok(session) => {
            let cut = session.deadline.token().clone();
            let service = service_fn(move |request| {
                let (proxy, session) = (proxy.clone(), session.clone());
                async move { Ok::<_, Infallible>(proxy.handle(&session, request).await) }
            });
            drive(io, service, [cut, stopping]).await;
        }
        Err(refusal) => {
            registry.metrics().tunnel_refused();
            tracing::warn!(session = %peer.session_id, remote = ?peer.remote_addr,
                reason = %refusal, "tunnel refused");
            let refusal = Arc::new(refusal);
            let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                let response = rescue(&refusal, request.uri().path());
                async move { Ok::<_, Infallible>(response) }
            });
            drive(io, service, [stopping.clone(), stopping]).await;
        }
    }
}

/// Serves one tunnel connection (HTTP/2, or HTTP/1.1 with upgrades) until it closes or one of
/// `stop` fires; then drains it briefly and drops it.
async fn drive<S>(io: TokioIo<crate::transport::BoxedIo>, service: S, stop: [CancellationToken; 2])
where
    S: hyper::service::Service<
            http::Request<hyper::body::Incoming>,
            Response = http::Response<crate::proxy::ProxyBody>,
            Error = Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http2()
        .timer(TokioTimer::new())
        .initial_stream_window_size(crate::proxy::http2::STREAM_WINDOW)
        .initial_connection_window_size(crate::proxy::http2::CONNECTION_WINDOW)
        .max_concurrent_streams(MAX_STREAMS_PER_TUNNEL);
    let connection = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(connection);
    let [a, b] = stop;
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "tunnel connection ended");
            }
            return;
        }
        () = a.cancelled() => {}
        () = b.cancelled() => {}
    }
    connection.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(DRAIN, connection).await;
}
