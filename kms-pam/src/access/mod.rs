//! Just-in-time access from the user's side: what `kms-pam pam access` does, for embedders too.
//!
//! [`open_session`] asks the KMS for a session (the key stays here; only a CSR travels), starts
//! the loopback proxy on `127.0.0.1` with a certificate made for this session, and writes the
//! session kubeconfig. [`AccessSession::wait_ended`] returns when the session stops by itself
//! (expiry, termination); [`AccessSession::close`] stops the proxy, ends the session in the KMS
//! and removes the kubeconfig.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use kms_pam::access::{open_session, AccessRequest};
//! use kms_pam::kms::client::KmsClient;
//! use kms_pam::kube::kubeconfig::{default_session_path, KubeconfigTarget};
//!
//! let kms = KmsClient::new("http://127.0.0.1:8080", Some("kmsu_...".into()))?;
//! let mut request = AccessRequest::new("prod-k8s", "admin", Duration::from_secs(3600));
//! request.kubeconfig = Some(KubeconfigTarget::File(default_session_path("prod-k8s", "admin")?));
//! let access = open_session(&kms, request).await?;
//! println!("KUBECONFIG={}", access.kubeconfig_path().unwrap().display());
//! access.wait_ended().await;
//! access.close().await?;
//! # Ok(()) }
//! ```

mod broker;
mod close;
mod watch;

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use broker::SessionBroker;
pub use watch::SessionEnd;

use crate::kms::api::{CreateSession, CreatedSession, SessionView};
use crate::kms::client::KmsError;
use crate::kube::kubeconfig::{
    context_name, InstalledKubeconfig, KubeconfigError, KubeconfigTarget, SessionKubeconfig,
};
use crate::local::{self, LocalProxyConfig, LocalProxyError};
use crate::proxy::ProxyHooks;
use crate::relay::RelayConnector;
use crate::secret::Secret;
use crate::session::SessionId;
use crate::tls::{GenerateReason, LocalServingCert, SessionKey, TlsError};
use crate::transport::tls::TlsConnector;
use crate::transport::{BoxedIo, GatewayTransport, TransportError};

/// What to open a session for.
#[derive(Clone)]
#[non_exhaustive]
pub struct AccessRequest {
    /// PAM resource (cluster).
    pub resource: String,
    /// PAM account on it.
    pub account: String,
    /// Requested lifetime (whole seconds; the KMS refuses more than the account or grant allows).
    pub duration: Duration,
    /// Why, for the audit trail.
    pub reason: Option<String>,
    /// Loopback port for the local proxy; 0 picks a free one.
    pub port: u16,
    /// Where to write the session kubeconfig; `None` writes none (the caller uses
    /// [`AccessSession::server_url`], [`AccessSession::local_ca_pem`] and
    /// [`AccessSession::local_token`] itself).
    pub kubeconfig: Option<KubeconfigTarget>,
    /// Stages the local proxy runs before a request leaves this machine.
    pub stages: Vec<Arc<dyn ProxyHooks>>,
}

impl std::fmt::Debug for AccessRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessRequest")
            .field("resource", &self.resource)
            .field("account", &self.account)
            .field("duration", &self.duration)
            .field("reason", &self.reason)
            .field("port", &self.port)
            .field("kubeconfig", &self.kubeconfig)
            .field("stages", &self.stages.len())
            .finish()
    }
}

impl AccessRequest {
    /// A request on any free port, without reason or kubeconfig.
    pub fn new(
        resource: impl Into<String>,
        account: impl Into<String>,
        duration: Duration,
    ) -> Self {
        Self {
            resource: resource.into(),
            account: account.into(),
            duration,
            reason: None,
            port: 0,
            kubeconfig: None,
            stages: Vec::new(),
        }
    }

    /// With a reason, for the audit trail.
    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// Serves the local proxy on this loopback port (0: any free one).
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Writes the session kubeconfig to `target`.
    pub fn with_kubeconfig(mut self, target: KubeconfigTarget) -> Self {
        self.kubeconfig = Some(target);
        self
    }

    /// Adds a stage the local proxy runs before a request leaves this machine (e.g. refusing a
    /// verb locally).
    pub fn with_stage(mut self, stage: Arc<dyn ProxyHooks>) -> Self {
        self.stages.push(stage);
        self
    }
}

/// Why a session could not be opened or closed cleanly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccessError {
    /// The requested duration is shorter than one second.
    #[error("the session duration must be at least one second")]
    ZeroDuration,
    /// The KMS refused or could not be reached.
    #[error(transparent)]
    Kms(#[from] KmsError),
    /// The loopback port could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// The session's key, certificate or tunnel configuration could not be made.
    #[error("cannot set up the session's TLS: {0}")]
    Tls(#[from] TlsError),
    /// The session kubeconfig could not be written or removed.
    #[error(transparent)]
    Kubeconfig(#[from] KubeconfigError),
    /// The local proxy stopped with an error.
    #[error(transparent)]
    Proxy(#[from] LocalProxyError),
}

/// What a closed session amounted to.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AccessSummary {
    /// The session as the KMS recorded its end.
    pub session: SessionView,
    /// How long it was open here.
    pub duration: Duration,
    /// Whether the control plane held the session's complete record when `close` returned
    /// (always, for a session that never used its tunnel); when not, the gateway delivers the
    /// rest shortly.
    pub record_complete: bool,
}

/// An open session with its local proxy running. Close it with [`AccessSession::close`];
/// dropping it instead stops the proxy, removes the kubeconfig and ends the session in the
/// background, best effort.
pub struct AccessSession {
    broker: Arc<dyn SessionBroker>,
    session: SessionView,
    gateway_address: String,
    local_addr: SocketAddr,
    local_token: Secret,
    local_ca_pem: String,
    context: String,
    kubeconfig: Option<InstalledKubeconfig>,
    stop: CancellationToken,
    /// Cancelled when the proxy task returns, for whatever reason.
    proxy_done: CancellationToken,
    proxy: Option<JoinHandle<Result<(), LocalProxyError>>>,
    /// Whether `close` already asked the KMS to end the session.
    end_requested: bool,
    /// Set once the local proxy dialled the gateway: the gateway then keeps a record to wait for.
    dialled: Arc<AtomicBool>,
    started: Instant,
}

/// Requests a session from `broker` (a [`crate::kms::client::KmsClient`], or a control plane of
/// your own), starts the local proxy and writes the kubeconfig. If anything fails after the
/// broker granted the session, the session is ended again before the error is returned.
pub async fn open_session<B>(
    broker: &B,
    request: AccessRequest,
) -> Result<AccessSession, AccessError>
where
    B: SessionBroker + Clone,
{
    let broker: Arc<dyn SessionBroker> = Arc::new(broker.clone());
    let duration_secs = request.duration.as_secs();
    if duration_secs == 0 {
        return Err(AccessError::ZeroDuration);
    }
    // Bound before asking the KMS, so a busy port does not cost a session.
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, request.port));
    let listen_error = |source| AccessError::Listen { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(listen_error)?;
    let (key, csr) = SessionKey::generate()?;
    let created = broker
        .create_session(&CreateSession {
            resource: request.resource.clone(),
            account: request.account.clone(),
            duration_secs,
            reason: request.reason.clone(),
            csr,
        })
        .await?;
    let id = created.session.session.id.clone();
    match start(broker.clone(), listener, &key, created, request) {
        Ok(access) => Ok(access),
        Err(error) => {
            if let Err(end_error) = broker.end_session(&id).await {
                tracing::warn!(session = %id, error = %end_error, "could not end the session after a failed start");
            }
            Err(error)
        }
    }
}

/// Everything after the KMS said yes; must not leave anything running when it fails.
fn start(
    broker: Arc<dyn SessionBroker>,
    listener: TcpListener,
    key: &SessionKey,
    created: CreatedSession,
    request: AccessRequest,
) -> Result<AccessSession, AccessError> {
    let local_addr = listener
        .local_addr()
        .map_err(|source| AccessError::Listen {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, request.port)),
            source,
        })?;
    let remaining = created.session.session.remaining(SystemTime::now());
    let local_cert = LocalServingCert::generate(remaining.max(Duration::from_secs(1)))?;
    let tls = local_cert.server_config()?;
    let connector: Box<dyn GatewayTransport> = if created.direct {
        Box::new(TlsConnector::from_pem(
            &created.ca_certificate,
            &created.certificate,
            key.key_pem(),
            created.gateway_address.clone(),
        )?)
    } else {
        Box::new(RelayConnector::from_pem(
            &created.ca_certificate,
            &created.certificate,
            key.key_pem(),
            &created.session.session.gateway,
            &created.gateway_address,
            created.relays.clone(),
        )?)
    };
    let local_token = Secret::random(32)
        .map_err(|e| AccessError::Tls(TlsError::Generate(GenerateReason::Random(e))))?;
    let kubeconfig_contents = SessionKubeconfig::new(
        &request.resource,
        &request.account,
        server_url(local_addr),
        local_cert.ca_pem.clone(),
        local_token.clone(),
    );
    let kubeconfig = request
        .kubeconfig
        .as_ref()
        .map(|target| InstalledKubeconfig::install(target, &kubeconfig_contents))
        .transpose()?;

    let stop = CancellationToken::new();
    let proxy_done = CancellationToken::new();
    let dialled = Arc::new(AtomicBool::new(false));
    let connector = Dialling {
        inner: connector,
        dialled: dialled.clone(),
    };
    let mut config = LocalProxyConfig::new(local_token.clone(), tls, Arc::new(connector));
    config.stages = request.stages;
    let (shutdown, done) = (stop.clone().cancelled_owned(), proxy_done.clone());
    let proxy = tokio::spawn(async move {
        let result = local::serve(listener, config, shutdown).await;
        done.cancel();
        result
    });
    Ok(AccessSession {
        broker,
        session: created.session,
        gateway_address: created.gateway_address,
        local_addr,
        local_token,
        local_ca_pem: local_cert.ca_pem,
        context: context_name(&request.resource, &request.account),
        kubeconfig,
        stop,
        proxy_done,
        proxy: Some(proxy),
        end_requested: false,
        dialled,
        started: Instant::now(),
    })
}

/// The tunnel connector, noting that it was used.
struct Dialling {
    inner: Box<dyn GatewayTransport>,
    dialled: Arc<AtomicBool>,
}

#[async_trait::async_trait]
impl GatewayTransport for Dialling {
    async fn connect(&self) -> Result<BoxedIo, TransportError> {
        let io = self.inner.connect().await?;
        self.dialled.store(true, Ordering::Relaxed);
        Ok(io)
    }
}

impl std::fmt::Debug for Dialling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialling")
            .field("dialled", &self.dialled)
            .finish_non_exhaustive()
    }
}

fn server_url(addr: SocketAddr) -> String {
    format!("https://{addr}")
}

impl AccessSession {
    /// The session as the KMS granted it.
    pub fn session(&self) -> &SessionView {
        &self.session
    }

    /// The session id.
    pub fn id(&self) -> &SessionId {
        &self.session.session.id
    }

    /// When the session stops working.
    pub fn expires_at(&self) -> SystemTime {
        self.session.session.expires_at
    }

    /// The gateway the tunnel goes to (`host:port`).
    pub fn gateway_address(&self) -> &str {
        &self.gateway_address
    }

    /// Where the local proxy listens (`127.0.0.1:PORT`).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The local proxy's URL, `https://127.0.0.1:PORT`.
    pub fn server_url(&self) -> String {
        server_url(self.local_addr)
    }

    /// The per-session bearer token the local proxy demands.
    pub fn local_token(&self) -> &Secret {
        &self.local_token
    }

    /// The CA (PEM) of the local proxy's certificate.
    pub fn local_ca_pem(&self) -> &str {
        &self.local_ca_pem
    }

    /// The kubeconfig context name, `kms-pam/RESOURCE/ACCOUNT`.
    pub fn context(&self) -> &str {
        &self.context
    }

    /// The kubeconfig written for the session (the merged-into file with `--merge`).
    pub fn kubeconfig_path(&self) -> Option<&Path> {
        self.kubeconfig.as_ref().map(InstalledKubeconfig::path)
    }
}

impl std::fmt::Debug for AccessSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessSession")
            .field("session", &self.session.session.id)
            .field("local_addr", &self.local_addr)
            .field("kubeconfig", &self.kubeconfig_path())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
