//! The whole path in one process: loopback proxy → in-memory tunnel → gateway → API server double.
//! Tests and examples start it with [`InProcessPath::start`] and drive it with the real kubectl.

use std::sync::Arc;
use std::time::Duration;

use kms_pam::audit::recording::{RecordingConfig, RecordingPolicy};
use kms_pam::audit::{AuditSink, MemoryAuditSink, TeeAuditSink};
use kms_pam::credential::{MemoryCredentialStore, Upstream};
use kms_pam::gateway::{self, GatewayConfig};
use kms_pam::local::{self, LocalProxyConfig};
use kms_pam::metrics::GatewayMetrics;
use kms_pam::proxy::{NoHooks, Pipeline, ProxyHooks};
use kms_pam::session::{MemorySessionManager, NewSession, Session};
use kms_pam::tls::{
    tunnel_server_config, CertificateAuthority, LocalServingCert, SessionCertSpec, SessionKey,
    UpstreamTls, TUNNEL_ALPN,
};
use kms_pam::transport::memory::memory_gateway;
use kms_pam::transport::tls::{AcceptorStats, TlsConnector, TlsTunnelAcceptor};
use kms_pam::transport::{GatewayTransport, TunnelAcceptor};
use kms_pam::Secret;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::apiserver::{ApiServerDouble, DoubleConfig};
use crate::kubectl::Kubectl;

/// The name of the gateway in the in-process path.
pub const GATEWAY: &str = "gw-test";

/// Which tunnel the path uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Tunnel {
    /// In-process duplex pipes.
    #[default]
    Memory,
    /// Mutual TLS over TCP on 127.0.0.1, with a test KMS CA and a session certificate issued from
    /// a CSR.
    Tls,
}

/// Options for [`InProcessPath::start_with`].
pub struct PathOptions {
    /// The tunnel between local proxy and gateway.
    pub tunnel: Tunnel,
    /// Session lifetime.
    pub session_duration: Duration,
    /// A gateway stage (after the session check).
    pub hooks: Arc<dyn ProxyHooks>,
    /// Stages of the loopback proxy.
    pub local_stages: Vec<Arc<dyn ProxyHooks>>,
    /// The API server double's settings (its token is the account token).
    pub double: DoubleConfig,
    /// How the gateway verifies the double (default: the double's CA as a bundle).
    pub upstream_tls: Option<UpstreamTls>,
    /// The host name the resource URL uses for the double (default: its IP address).
    pub upstream_host: Option<String>,
    /// The port the resource URL uses (default: the double's; another one simulates an API
    /// server that is down).
    pub upstream_port: Option<u16>,
    /// The gateway the session is bound to (default: this gateway).
    pub session_gateway: Option<String>,
    /// A further audit sink, teed with the in-memory one the harness keeps.
    pub extra_audit: Option<Arc<dyn AuditSink>>,
    /// The resource's recording policy (default: streams that cannot be recorded are refused).
    pub recording: RecordingPolicy,
    /// The gateway pipeline's own recording settings (default: the library's).
    pub gateway_recording: Option<RecordingConfig>,
}

impl Default for PathOptions {
    fn default() -> Self {
        Self {
            tunnel: Tunnel::Memory,
            session_duration: Duration::from_secs(600),
            hooks: Arc::new(NoHooks),
            local_stages: Vec::new(),
            double: DoubleConfig::default(),
            upstream_tls: None,
            upstream_host: None,
            upstream_port: None,
            session_gateway: None,
            extra_audit: None,
            recording: RecordingPolicy::default(),
            gateway_recording: None,
        }
    }
}

/// A running in-process path.
#[derive(Debug)]
pub struct InProcessPath {
    /// The API server double behind the gateway.
    pub double: ApiServerDouble,
    /// Everything the gateway audited.
    pub audit: Arc<MemoryAuditSink>,
    /// Handshake counters of the TLS tunnel acceptor (`Tunnel::Tls` only).
    pub tunnel_stats: Option<Arc<AcceptorStats>>,
    /// The gateway's tunnel listener and a connector holding the session's certificate
    /// (`Tunnel::Tls` only).
    pub tunnel: Option<(std::net::SocketAddr, Arc<TlsConnector>)>,
    /// The gateway's metrics.
    pub metrics: Arc<GatewayMetrics>,
    /// The session manager the gateway checks.
    pub sessions: Arc<MemorySessionManager>,
    /// The session in use.
    pub session: Session,
    /// The loopback proxy's URL (`https://127.0.0.1:PORT`).
    pub local_url: String,
    /// The loopback proxy's CA certificate.
    pub local_ca_pem: String,
    /// The local bearer token of the session kubeconfig.
    pub local_token: Secret,
    /// kubectl configured with the session kubeconfig.
    pub kubectl: Kubectl,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl InProcessPath {
    /// Starts the path with default options.
    pub async fn start() -> Self {
        Self::start_with(PathOptions::default()).await
    }

    /// Starts the double, a gateway and a loopback proxy; opens a session for account
    /// `double/admin`. Panics on set-up failure: this is test scaffolding.
    pub async fn start_with(options: PathOptions) -> Self {
        let double = ApiServerDouble::start(options.double)
            .await
            .expect("start the API server double");
        let credentials = MemoryCredentialStore::new();
        let host = options.upstream_host.as_deref().unwrap_or("127.0.0.1");
        let port = options.upstream_port.unwrap_or(double.addr().port());
        let url = format!("https://{host}:{port}");
        let tls = options
            .upstream_tls
            .clone()
            .unwrap_or_else(|| UpstreamTls::CaBundle(double.ca_pem().to_owned()));
        credentials.add_resource(
            "double",
            Upstream::new(url.parse().expect("double URL"), tls),
        );
        credentials.add_account("double", "admin", Secret::new(double.token()));
        credentials.set_recording_policy("double", options.recording);
        let sessions = Arc::new(MemorySessionManager::new());
        let session = sessions
            .create(
                NewSession::new(
                    "alice",
                    "double",
                    "admin",
                    options.session_gateway.unwrap_or_else(|| GATEWAY.into()),
                    options.session_duration,
                )
                .with_reason("end-to-end test"),
            )
            .await
            .expect("create session");
        let audit = Arc::new(MemoryAuditSink::new());
        let metrics = Arc::new(GatewayMetrics::new());
        let stop = CancellationToken::new();
        let mut tasks = Vec::new();

        let gateway_audit: Arc<dyn AuditSink> = match options.extra_audit {
            Some(extra) => Arc::new(TeeAuditSink::new(vec![audit.clone(), extra])),
            None => audit.clone(),
        };
        let mut pipeline = Pipeline::builder()
            .stage(options.hooks)
            .observer(metrics.clone());
        if let Some(recording) = options.gateway_recording {
            pipeline = pipeline.recording(recording);
        }
        let pipeline = pipeline.build();
        let config = GatewayConfig::new(
            GATEWAY,
            sessions.clone(),
            Arc::new(credentials),
            gateway_audit,
        )
        .with_pipeline(pipeline);
        let (transport, tunnel_stats, tunnel): (Arc<dyn GatewayTransport>, _, _) =
            match options.tunnel {
                Tunnel::Memory => {
                    let (dial, acceptor) = memory_gateway();
                    tasks.push(spawn_gateway(acceptor, config, stop.clone()));
                    (Arc::new(dial.connector(session.id.clone())), None, None)
                }
                Tunnel::Tls => {
                    let (connector, acceptor) = tls_tunnel(&session).await;
                    let stats = acceptor.stats();
                    let addr = acceptor.local_addr().expect("tunnel listener address");
                    tasks.push(spawn_gateway(acceptor, config, stop.clone()));
                    let connector = Arc::new(connector);
                    (connector.clone(), Some(stats), Some((addr, connector)))
                }
            };

        let cert = LocalServingCert::generate(options.session_duration).expect("local cert");
        let local_token = Secret::random(32).expect("random");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let local_url = format!("https://{}", listener.local_addr().expect("addr"));
        let tls = cert.server_config().expect("local TLS config");
        let mut config = LocalProxyConfig::new(local_token.clone(), tls, transport);
        config.stages = options.local_stages;
        let local_stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = local::serve(listener, config, local_stop.cancelled_owned()).await {
                tracing::error!(error = %e, "local proxy stopped");
            }
        }));

        let kubectl = Kubectl::new(&local_url, &cert.ca_pem, local_token.expose())
            .expect("write session kubeconfig");
        Self {
            double,
            audit,
            tunnel_stats,
            tunnel,
            metrics,
            sessions,
            session,
            local_url,
            local_ca_pem: cert.ca_pem,
            local_token,
            kubectl,
            stop,
            tasks,
        }
    }

    /// Stops the proxy, the gateway and the double.
    pub async fn shutdown(self) {
        self.stop.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
        self.double.shutdown().await;
    }
}

fn spawn_gateway<A: TunnelAcceptor>(
    acceptor: A,
    config: GatewayConfig,
    stop: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = gateway::serve(acceptor, config, stop.cancelled_owned()).await {
            tracing::error!(error = %e, "gateway stopped");
        }
    })
}

/// A test KMS CA, a gateway certificate for 127.0.0.1, a listening TLS acceptor, and a session
/// certificate issued from the client's CSR, as KMS would.
async fn tls_tunnel(session: &Session) -> (TlsConnector, TlsTunnelAcceptor) {
    let ca = CertificateAuthority::generate("kms-pam test CA", Duration::from_secs(3600))
        .expect("test CA");
    let server = ca
        .issue_server_cert(&["127.0.0.1".to_owned()], Duration::from_secs(3600))
        .expect("gateway cert");
    let tls = tunnel_server_config(ca.cert_pem(), &server.cert_pem, &server.key, &[TUNNEL_ALPN])
        .expect("gateway TLS config");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let acceptor = TlsTunnelAcceptor::new(listener, tls, GATEWAY.to_owned());
    let (key, csr) = SessionKey::generate().expect("session key");
    let spec = SessionCertSpec::new(
        session.id.to_string(),
        session.gateway.clone(),
        session.user.clone(),
        session.created_at,
        session.expires_at,
    );
    let cert = ca.sign_session_csr(&csr, &spec).expect("session cert");
    let connector = TlsConnector::from_pem(ca.cert_pem(), &cert, key.key_pem(), addr.to_string())
        .expect("connector");
    (connector, acceptor)
}

impl std::fmt::Debug for PathOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PathOptions")
            .field("tunnel", &self.tunnel)
            .field("session_duration", &self.session_duration)
            .finish_non_exhaustive()
    }
}
