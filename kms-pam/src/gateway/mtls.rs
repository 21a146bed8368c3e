//! A gateway on mutual TLS: the TLS acceptor, the metrics endpoint and [`super::serve`], wired
//! once for every mode (standalone file, KMS).

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{GatewayError, GatewayOptions};
use crate::credential::CredentialStore;
use crate::metrics::{GatewayMetrics, Refresh};
use crate::relay::RelayTunnels;
use crate::session::SessionManager;
use crate::tls::{tunnel_server_config, PrivateKeyPem, TUNNEL_ALPN};
use crate::transport::tls::TlsTunnelAcceptor;
use crate::transport::TunnelAcceptor;

/// The gateway's TLS identity.
#[derive(Debug)]
#[non_exhaustive]
pub struct GatewayTls {
    /// The KMS CA (PEM): session certificates must chain to it.
    pub ca_pem: String,
    /// The gateway's server certificate chain (PEM).
    pub cert_pem: String,
    /// Its private key.
    pub key: PrivateKeyPem,
}

impl GatewayTls {
    /// An identity from PEM texts.
    pub fn new(ca_pem: impl Into<String>, cert_pem: impl Into<String>, key: PrivateKeyPem) -> Self {
        Self {
            ca_pem: ca_pem.into(),
            cert_pem: cert_pem.into(),
            key,
        }
    }
}

/// Everything a mutual-TLS gateway is made of.
#[non_exhaustive]
pub struct MtlsGateway {
    /// This gateway's name; sessions bound to another gateway are refused.
    pub name: String,
    /// TLS identity.
    pub tls: GatewayTls,
    /// Where sessions are looked up and watched.
    pub sessions: Arc<dyn SessionManager>,
    /// Where account credentials come from.
    pub credentials: Arc<dyn CredentialStore>,
    /// Audit sink, pipeline, metrics endpoint, drain: what every mode shares.
    pub options: GatewayOptions,
}

impl MtlsGateway {
    /// A gateway named `name` on mutual TLS, with `options`.
    pub fn new(
        name: impl Into<String>,
        tls: GatewayTls,
        sessions: Arc<dyn SessionManager>,
        credentials: Arc<dyn CredentialStore>,
        options: GatewayOptions,
    ) -> Self {
        Self {
            name: name.into(),
            tls,
            sessions,
            credentials,
            options,
        }
    }
}

impl std::fmt::Debug for MtlsGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MtlsGateway")
            .field("name", &self.name)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
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
    serve_with_refresh(Some(listener), None, gateway, None, shutdown).await
}

/// [`serve`], on a listener, relays or both, with `refresh` also run before each metrics scrape
/// (e.g. to copy the audit spool depth into the metrics).
pub(crate) async fn serve_with_refresh<F>(
    listener: Option<TcpListener>,
    relayed: Option<RelayTunnels>,
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
    .map_err(GatewayError::TlsMaterial)?;
    let (mut config, metrics_listener) =
        gateway
            .options
            .into_config(gateway.name, gateway.sessions, gateway.credentials);
    let listening = listener.map(|l| TlsTunnelAcceptor::new(l, tls, config.name.clone()));
    let stats = listening.as_ref().map(TlsTunnelAcceptor::stats);
    let links = relayed.as_ref().map(RelayTunnels::links);
    let direct = listening.is_some();
    let mut acceptors: Vec<Box<dyn TunnelAcceptor>> = Vec::new();
    acceptors.extend(listening.map(|a| Box::new(a) as Box<dyn TunnelAcceptor>));
    acceptors.extend(relayed.map(|r| Box::new(r) as Box<dyn TunnelAcceptor>));
    let acceptor = crate::transport::merge(acceptors);
    let stop = CancellationToken::new();
    if let Some(listener) = metrics_listener {
        let metrics = Arc::new(GatewayMetrics::new());
        config.pipeline = config.pipeline.with_observer(metrics.clone());
        let extra = refresh;
        let refresh: Refresh = Arc::new(move |m| {
            if let Some(stats) = &stats {
                m.sync_handshakes(stats.handshakes_ok(), stats.handshakes_failed());
            }
            if let Some(extra) = &extra {
                extra(m);
            }
        });
        let exposition = crate::metrics::Exposition {
            scrape: Arc::new(move || {
                refresh(&metrics);
                metrics.encode()
            }),
            // Ready when CLIs can reach it: it listens, or a relay holds its tunnel.
            ready: Arc::new(move || direct || links.as_ref().is_some_and(|l| l.connected() > 0)),
        };
        let stop = stop.clone();
        tokio::spawn(async move {
            let served = crate::metrics::serve(listener, exposition, stop.cancelled_owned());
            if let Err(e) = served.await {
                tracing::error!(error = %e, "metrics endpoint stopped");
            }
        });
    }
    let outcome = super::serve(acceptor, config, shutdown).await;
    stop.cancel();
    outcome
}
