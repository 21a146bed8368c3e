//! An embedder's own control plane, through the public API alone: a `SessionBroker` of theirs
//! (sessions in memory, certificates from their own CA) opens a session with
//! `access::open_session`, and the real kubectl runs through the same local proxy, mutual-TLS
//! tunnel and gateway as with KMS; closing the session ends it at the broker and removes its
//! kubeconfig.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kms_pam::access::{open_session, AccessRequest, SessionBroker};
use kms_pam::audit::NullAuditSink;
use kms_pam::credential::{MemoryCredentialStore, Upstream};
use kms_pam::gateway::mtls::{self, GatewayTls, MtlsGateway};
use kms_pam::gateway::GatewayOptions;
use kms_pam::kms::api::{CreateSession, CreatedSession, ErrorCode, SessionView};
use kms_pam::kms::client::KmsError;
use kms_pam::kube::kubeconfig::KubeconfigTarget;
use kms_pam::session::{EndCause, MemorySessionManager, NewSession, SessionId, SessionStatus};
use kms_pam::tls::{CertificateAuthority, SessionCertSpec, UpstreamTls};
use kms_pam::Secret;
use kms_pam_tests::apiserver::{ApiServerDouble, DoubleConfig};
use kms_pam_tests::kubectl::Kubectl;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const GATEWAY: &str = "gw-own";

/// The embedder's control plane: grants every request for user "alice", keeps sessions in the
/// memory manager the gateway reads, signs CSRs with its own CA.
struct OwnControlPlane {
    ca: CertificateAuthority,
    sessions: Arc<MemorySessionManager>,
    gateway_address: String,
    ended: AtomicUsize,
}

fn refused(message: String) -> KmsError {
    KmsError::Api {
        status: 404,
        code: ErrorCode::NotFound,
        message,
    }
}

#[async_trait]
impl SessionBroker for OwnControlPlane {
    async fn create_session(&self, request: &CreateSession) -> Result<CreatedSession, KmsError> {
        let duration = Duration::from_secs(request.duration_secs);
        let mut new = NewSession::new(
            "alice",
            &request.resource,
            &request.account,
            GATEWAY,
            duration,
        );
        if let Some(reason) = &request.reason {
            new = new.with_reason(reason);
        }
        let session = self
            .sessions
            .create(new)
            .await
            .map_err(|e| refused(e.to_string()))?;
        let spec = SessionCertSpec::new(
            session.id.to_string(),
            GATEWAY,
            "alice",
            session.created_at,
            session.expires_at,
        );
        let certificate = self
            .ca
            .sign_session_csr(&request.csr, &spec)
            .map_err(KmsError::Tls)?;
        Ok(CreatedSession {
            session: SessionView {
                session,
                end_cause: None,
                identity: None,
            },
            certificate,
            ca_certificate: self.ca.cert_pem().to_owned(),
            gateway_address: self.gateway_address.clone(),
            direct: true,
            relays: Vec::new(),
        })
    }

    async fn end_session(&self, id: &SessionId) -> Result<SessionView, KmsError> {
        self.ended.fetch_add(1, Ordering::SeqCst);
        let session = self
            .sessions
            .end(id, EndCause::User)
            .await
            .map_err(|e| refused(e.to_string()))?;
        Ok(SessionView {
            session,
            end_cause: Some(EndCause::User),
            identity: None,
        })
    }

    async fn session_status(&self, id: &SessionId) -> Result<SessionView, KmsError> {
        let session = self
            .sessions
            .list()
            .into_iter()
            .find(|s| &s.id == id)
            .ok_or_else(|| refused(format!("no session {id}")))?;
        Ok(SessionView {
            session,
            end_cause: None,
            identity: None,
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedders_own_control_plane_opens_sessions_kubectl_uses() {
    let cluster = ApiServerDouble::start(DoubleConfig::default())
        .await
        .expect("API server double");
    let credentials = MemoryCredentialStore::new();
    credentials.add_resource(
        "prod",
        Upstream::new(
            cluster.url().parse().expect("url"),
            UpstreamTls::CaBundle(cluster.ca_pem().to_owned()),
        ),
    );
    credentials.add_account("prod", "admin", Secret::new(cluster.token()));

    let ca = CertificateAuthority::generate("own CA", Duration::from_secs(3600)).expect("CA");
    let server = ca
        .issue_server_cert(&["127.0.0.1".to_owned()], Duration::from_secs(3600))
        .expect("gateway certificate");
    let sessions = Arc::new(MemorySessionManager::new());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("listen");
    let gateway_address = listener.local_addr().expect("address").to_string();
    let stop = CancellationToken::new();
    let gateway = MtlsGateway::new(
        GATEWAY,
        GatewayTls::new(ca.cert_pem(), server.cert_pem, server.key),
        sessions.clone(),
        Arc::new(credentials),
        GatewayOptions::new(Arc::new(NullAuditSink)),
    );
    let served = tokio::spawn(mtls::serve(
        listener,
        gateway,
        stop.clone().cancelled_owned(),
    ));
    let broker = Arc::new(OwnControlPlane {
        ca,
        sessions: sessions.clone(),
        gateway_address,
        ended: AtomicUsize::new(0),
    });

    let dir = tempfile::tempdir().expect("temp dir");
    let request = AccessRequest::new("prod", "admin", Duration::from_secs(600))
        .with_reason("on call")
        .with_kubeconfig(KubeconfigTarget::File(dir.path().join("session.yaml")));
    let access = open_session(&broker, request)
        .await
        .expect("session opened");
    assert_eq!(access.gateway_address(), broker.gateway_address);
    let kubectl = Kubectl::for_session(&access).expect("kubectl");
    let pods = kubectl.run(&["get", "pods", "-o", "name"]).await;
    assert!(pods.success(), "{}", pods.stderr);
    assert!(pods.stdout_str().contains("pod/"), "{}", pods.stdout_str());
    let listed = cluster
        .requests()
        .into_iter()
        .filter(|r| r.path == "/api/v1/namespaces/default/pods")
        .count();
    assert!(
        listed >= 1,
        "the list reached the cluster through the gateway"
    );

    let id = access.id().clone();
    let kubeconfig = access.kubeconfig_path().expect("kubeconfig").to_owned();
    let summary = access.close().await.expect("closed");
    assert_eq!(summary.session.session.status, SessionStatus::Ended);
    assert_eq!(broker.ended.load(Ordering::SeqCst), 1);
    assert!(!kubeconfig.exists(), "the session kubeconfig is removed");
    let ended = broker.session_status(&id).await.expect("known");
    assert_eq!(ended.session.status, SessionStatus::Ended);
    stop.cancel();
    served.await.expect("join").expect("gateway");
}
