//! The gateway service: accepts authenticated tunnels and serves their requests with the
//! [`crate::proxy::GatewayProxy`].
//!
//! `serve(acceptor, config, shutdown)` is the whole gateway; the `kms-pam-gateway` binary only
//! builds its arguments.

pub mod kms;
pub mod mtls;
mod registry;
pub mod standalone;

use std::convert::Infallible;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use registry::SessionRegistry;

use crate::audit::evidence::signing::SigningError;
use crate::audit::{AuditError, AuditSink};
use crate::credential::CredentialStore;
use crate::kms::api::PrincipalKind;
use crate::kms::client::KmsError;
use crate::proxy::{GatewayProxy, Pipeline};
use crate::session::SessionManager;
use crate::tls::TlsError;
use crate::transport::{AcceptedTunnel, TransportError, TunnelAcceptor};

/// The default of [`GatewayConfig::drain_timeout`]: open requests are cut when the gateway stops
/// and write their last events within milliseconds; this bounds one that hangs (a sink that
/// blocks, an upstream that never answers), so a stop never waits forever.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// What a gateway is made of: its name, the three traits it depends on, and its request
/// [`Pipeline`].
#[non_exhaustive]
pub struct GatewayConfig {
    /// This gateway's name; sessions bound to another gateway are refused.
    pub name: String,
    /// Where sessions are looked up and watched.
    pub sessions: Arc<dyn SessionManager>,
    /// Where account credentials come from.
    pub credentials: Arc<dyn CredentialStore>,
    /// Where audit events go.
    pub audit: Arc<dyn AuditSink>,
    /// Stages, upstream client, observers and recording settings.
    pub pipeline: Pipeline,
    /// At shutdown, how long the requests still open (their streams cut, their connections
    /// closed) get to write their last audit events before the sink is flushed; events written
    /// later may be lost, and the count of such requests is logged as an error.
    pub drain_timeout: Duration,
}

impl GatewayConfig {
    /// A gateway named `name` with the default [`Pipeline`] (built-in stages only, pooled HTTPS
    /// upstream, no observer).
    pub fn new(
        name: impl Into<String>,
        sessions: Arc<dyn SessionManager>,
        credentials: Arc<dyn CredentialStore>,
        audit: Arc<dyn AuditSink>,
    ) -> Self {
        Self {
            name: name.into(),
            sessions,
            credentials,
            audit,
            pipeline: Pipeline::default(),
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
        }
    }

    /// Runs `pipeline` instead of the default one.
    pub fn with_pipeline(mut self, pipeline: Pipeline) -> Self {
        self.pipeline = pipeline;
        self
    }

    /// Gives the open requests `timeout` at shutdown instead of [`DEFAULT_DRAIN_TIMEOUT`].
    pub fn with_drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }
}

impl std::fmt::Debug for GatewayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayConfig")
            .field("name", &self.name)
            .field("pipeline", &self.pipeline)
            .field("drain_timeout", &self.drain_timeout)
            .finish_non_exhaustive()
    }
}

/// The settings every gateway mode shares ([`mtls`], [`standalone`], [`kms`]): where audit
/// events go, the request [`Pipeline`], the metrics endpoint and the drain at shutdown. Each mode
/// holds one; build it with [`GatewayOptions::new`] and the `with_*` methods.
#[non_exhaustive]
pub struct GatewayOptions {
    /// Where audit events go. A KMS-run gateway also spools every event for KMS; this sink gets
    /// them besides (unchained).
    pub audit: Arc<dyn AuditSink>,
    /// Stages, upstream client, observers and recording settings.
    pub pipeline: Pipeline,
    /// Serve `/healthz` and Prometheus `/metrics` here, if set (the metrics are added to the
    /// pipeline's observers).
    pub metrics_listener: Option<TcpListener>,
    /// At shutdown, how long the open requests get to write their last audit events (see
    /// [`GatewayConfig::drain_timeout`]).
    pub drain_timeout: Duration,
}

impl GatewayOptions {
    /// Audit to `audit`, with the default [`Pipeline`], no metrics endpoint and
    /// [`DEFAULT_DRAIN_TIMEOUT`].
    pub fn new(audit: Arc<dyn AuditSink>) -> Self {
        Self {
            audit,
            pipeline: Pipeline::default(),
            metrics_listener: None,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
        }
    }

    /// Runs `pipeline` instead of the default one.
    pub fn with_pipeline(mut self, pipeline: Pipeline) -> Self {
        self.pipeline = pipeline;
        self
    }

    /// Serves `/healthz` and Prometheus `/metrics` on `listener`, if given.
    pub fn with_metrics_listener(mut self, listener: Option<TcpListener>) -> Self {
        self.metrics_listener = listener;
        self
    }

    /// Gives the open requests `timeout` at shutdown instead of [`DEFAULT_DRAIN_TIMEOUT`].
    pub fn with_drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// The gateway these options make with its name and traits, and the metrics listener.
    pub(crate) fn into_config(
        self,
        name: String,
        sessions: Arc<dyn SessionManager>,
        credentials: Arc<dyn CredentialStore>,
    ) -> (GatewayConfig, Option<TcpListener>) {
        let config = GatewayConfig::new(name, sessions, credentials, self.audit)
            .with_pipeline(self.pipeline)
            .with_drain_timeout(self.drain_timeout);
        (config, self.metrics_listener)
    }
}

impl std::fmt::Debug for GatewayOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayOptions")
            .field("pipeline", &self.pipeline)
            .field("metrics_listener", &self.metrics_listener)
            .field("drain_timeout", &self.drain_timeout)
            .finish_non_exhaustive()
    }
}

/// Errors that stop a gateway.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The tunnel listener failed.
    #[error("tunnel listener failed: {0}")]
    Listener(#[from] TransportError),
    /// The gateway's TLS material (CA, certificate, key) cannot be used.
    #[error("invalid gateway configuration: gateway TLS material: {0}")]
    TlsMaterial(#[source] TlsError),
    /// The advertised address is unspecified (`0.0.0.0`, `::`): CLIs cannot dial it.
    #[error(
        "invalid gateway configuration: the advertised address {advertise} is unspecified \
         (every interface), which CLIs cannot dial; advertise the name or address they reach \
         this gateway at (--advertise HOST:PORT)"
    )]
    UnspecifiedAddress {
        /// The address as given.
        advertise: String,
    },
    /// Neither a listener nor a relay: CLIs could not reach the gateway at all.
    #[error("invalid gateway configuration: give --listen ADDR, --relay HOST:PORT, or both")]
    NoWayIn,
    /// The identity certificate could not be renewed.
    #[error("cannot renew the gateway's certificate with KMS: {0}")]
    Renewal(#[source] crate::kms::client::KmsError),
    /// The data dir holds no identity and no enrollment token was given.
    #[error(
        "invalid gateway configuration: {} holds no gateway identity: run once with \
         --enroll-token (from `kms-pam gateway create {name}`)",
        data_dir.display()
    )]
    NotEnrolled {
        /// The data dir.
        data_dir: PathBuf,
        /// The gateway's name.
        name: String,
    },
    /// A file or directory of the data dir cannot be read, written or created.
    #[error("invalid gateway configuration: {}: {source}", path.display())]
    DataDir {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The gateway's audit key cannot be loaded or created.
    #[error("invalid gateway configuration: audit key: {0}")]
    AuditKey(#[source] SigningError),
    /// The gateway's credential sealing key cannot be loaded or created.
    #[error("invalid gateway configuration: credential sealing key: {0}")]
    SealingKey(#[source] crate::credential::sealing::SealingError),
    /// The audit spool cannot be opened.
    #[error("invalid gateway configuration: audit spool: {0}")]
    Spool(#[source] AuditError),
    /// The key and certificate signing request for enrollment cannot be made.
    #[error("invalid gateway configuration: {0}")]
    Csr(#[source] TlsError),
    /// The KMS client cannot be built (URL, token).
    #[error("invalid gateway configuration: {0}")]
    KmsClient(#[source] KmsError),
    /// KMS refused the enrollment.
    #[error("invalid gateway configuration: enrollment failed: {0}")]
    Enrollment(#[source] KmsError),
    /// KMS refused the identity kept in the data dir.
    #[error("invalid gateway configuration: KMS refused this gateway's identity: {0}")]
    IdentityRefused(#[source] KmsError),
    /// The data dir's token belongs to another principal.
    #[error(
        "invalid gateway configuration: the token in {} belongs to {kind} {holder:?}, not \
         gateway {name:?}",
        data_dir.display()
    )]
    WrongIdentity {
        /// The data dir.
        data_dir: PathBuf,
        /// What the token belongs to.
        kind: PrincipalKind,
        /// Its name.
        holder: String,
        /// The gateway's name.
        name: String,
    },
    /// KMS does not hold (and refused to register) this gateway's audit key.
    #[error(
        "invalid gateway configuration: KMS does not hold this gateway's audit key \
         {fingerprint} ({}): {source}; if {} lost its key, enroll the gateway again",
        key_path.display(),
        data_dir.display()
    )]
    AuditKeyRefused {
        /// The key's fingerprint.
        fingerprint: String,
        /// The key file.
        key_path: PathBuf,
        /// The data dir.
        data_dir: PathBuf,
        /// KMS's answer (boxed: it keeps the error small).
        #[source]
        source: Box<KmsError>,
    },
    /// KMS does not hold (and refused to register) the key it seals this gateway's credentials
    /// to (an older KMS without sealing: upgrade KMS first).
    #[error(
        "invalid gateway configuration: KMS refused this gateway's credential sealing key ({}): \
         {source}; upgrade KMS before its gateways, and if {} lost its key, enroll the gateway \
         again",
        key_path.display(),
        data_dir.display()
    )]
    SealingKeyRefused {
        /// The key file.
        key_path: PathBuf,
        /// The data dir.
        data_dir: PathBuf,
        /// KMS's answer (boxed: it keeps the error small).
        #[source]
        source: Box<KmsError>,
    },
}

/// Serves tunnels from `acceptor` until `shutdown` resolves (or the acceptor closes), then stops:
/// it stops accepting, ends the open streams (watches, follows, exec), gives plain requests their
/// connection's drain, closes the connections, waits (at most [`GatewayConfig::drain_timeout`])
/// until every request has written its last audit events, and only then flushes the audit sink.
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
        config.pipeline.observer.clone(),
        config.pipeline.connector.clone(),
    );
    let drain_timeout = config.drain_timeout;
    let proxy = Arc::new(GatewayProxy::new(config.pipeline, config.audit.clone()));
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
    drop(acceptor);
    proxy.stop_streams();
    stopping.cancel();
    tasks.close();
    tasks.wait().await;
    // The connections are gone, but hyper's per-stream tasks may still hold response bodies,
    // whose taps write the requests' last events when dropped: those must reach the sink before
    // it is flushed, and before the runtime (whose blocking pool a file sink may use) stops.
    let unfinished = proxy.drain(drain_timeout).await;
    if unfinished > 0 {
        tracing::error!(unfinished, timeout = ?drain_timeout,
            "requests still open at shutdown; their last audit events may be lost");
    }
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
    match registry.attach(&peer).await {
        Ok(session) => {
            let cut = session.deadline().token().clone();
            let service = service_fn(move |request| {
                let (proxy, session) = (proxy.clone(), session.clone());
                // Counted now, while the connection runs: its task may start after the drain.
                let admitted = proxy.admit();
                async move {
                    let response = proxy.handle_admitted(&session, request, admitted).await;
                    Ok::<_, Infallible>(response)
                }
            });
            let stop = async move {
                tokio::select! {
                    () = cut.cancelled() => {}
                    () = stopping.cancelled() => {}
                }
            };
            crate::net::conn::serve_http(
                tunnel.io,
                service,
                crate::net::conn::HttpLimits::TUNNEL,
                stop,
            )
            .await;
        }
        Err(refusal) => {
            registry.observer().tunnel_refused();
            tracing::warn!(session = %peer.session_id, remote = ?peer.remote_addr,
                reason = %refusal, "tunnel refused");
            let refusal = Arc::new(refusal);
            let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                let response = proxy.refuse_unattached(&refusal, request.method(), request.uri());
                async move { Ok::<_, Infallible>(response) }
            });
            let limits = crate::net::conn::HttpLimits::TUNNEL;
            crate::net::conn::serve_http(tunnel.io, service, limits, stopping.cancelled_owned())
                .await;
        }
    }
}
