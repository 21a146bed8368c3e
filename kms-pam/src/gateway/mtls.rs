//! A gateway on mutual TLS: the TLS acceptor, the metrics endpoint and [`super::serve`], wired
//! once for every mode (standalone file, KMS).

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{GatewayConfig, GatewayError};
use crate::audit::AuditSink;
use crate::credential::CredentialStore;
use crate::metrics::{GatewayMetrics, Refresh};
use crate::proxy::ProxyHooks;
use crate::session::SessionManager;
use crate::tls::{tunnel_server_config, PrivateKeyPem, TUNNEL_ALPN};
use crate::transport::tls::TlsTunnelAcceptor;

/// The gateway's TLS identity.
pub struct GatewayTls {
    /// The KMS CA (PEM): session certificates must chain to it.
    pub ca_pem: String,
    /// The gateway's server certificate chain (PEM).
    pub cert_pem: String,
    /// Its private key.
    pub key: PrivateKeyPem,
}

/// Everything a mutual-TLS gateway is made of.
pub struct MtlsGateway {
    /// Gateway name.
    pub name: String,
    /// TLS identity.
    pub tls: GatewayTls,
    /// Session source.
    pub sessions: Arc<dyn SessionManager>,
    /// Credential source.
    pub credentials: Arc<dyn CredentialStore>,
    /// Audit sink.
    pub audit: Arc<dyn AuditSink>,
    /// Embedder hooks.
    pub hooks: Arc<dyn ProxyHooks>,
    /// Serve `/healthz` and `/metrics` here, if set.
    pub metrics_listener: Option<TcpListener>,
}

/// Serves session tunnels on `listener` until `shutdown` resolves.
pub async fn serve<F>(
    listener: TcpListener,
    gateway: MtlsGateway,
    shutdown: F,
) -> Result<(), GatewayError>
where
    F: Future<Output = ()>,
{
    serve_with_refresh(listener, gateway, None, shutdown).await
}

/// [`serve`], with `refresh` also run before each metrics scrape (e.g. to copy the audit spool
/// depth into the metrics).
pub async fn serve_with_refresh<F>(
    listener: TcpListener,
    gateway: MtlsGateway,
    refresh: Option<Refresh>,
    shutdown: F,
) -> Result<(), GatewayError>
where
    F: Future<Output = ()>,
{
    let tls = tunnel_server_config(
        &gateway.tls.ca_pem,
        &gateway.tls.cert_pem,
        &gateway.tls.key,
        &[TUNNEL_ALPN],
    )
    .map_err(|e| GatewayError::Config(format!("gateway TLS material: {e}")))?;
    let acceptor = TlsTunnelAcceptor::new(listener, tls, gateway.name.clone());
    let metrics = Arc::new(GatewayMetrics::new());
    let stop = CancellationToken::new();
    if let Some(listener) = gateway.metrics_listener {
        let stats = acceptor.stats();
        let extra = refresh;
        let refresh: Refresh = Arc::new(move |m| {
            m.sync_handshakes(stats.handshakes_ok(), stats.handshakes_failed());
            if let Some(extra) = &extra {
                extra(m);
            }
        });
        let (metrics, stop) = (metrics.clone(), stop.clone());
        tokio::spawn(async move {
            let served =
                crate::metrics::serve(listener, metrics, Some(refresh), stop.cancelled_owned());
            if let Err(e) = served.await {
                tracing::error!(error = %e, "metrics endpoint stopped");
            }
        });
    }
    let config = GatewayConfig {
        name: gateway.name,
        sessions: gateway.sessions,
        credentials: gateway.credentials,
        audit: gateway.audit,
        hooks: gateway.hooks,
        metrics,
    };
    let outcome = super::serve(acceptor, config, shutdown).await;
    stop.cancel();
    outcome
}
