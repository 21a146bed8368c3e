//! `open_session` / `wait_ended` / `close` against a fake KMS that issues real session
//! certificates; the gateway is unreachable, which the local proxy only finds out per request.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

use super::*;
use crate::kms::api::CreateSession;
use crate::kms::client::KmsClient;
use crate::session::{Session, SessionStatus};
use crate::tls::{CertificateAuthority, SessionCertSpec};

const HOUR: Duration = Duration::from_secs(3600);

struct FakeKms {
    ca: CertificateAuthority,
    gateway_address: String,
    session: Mutex<Option<SessionView>>,
    calls: Mutex<Vec<String>>,
}

impl FakeKms {
    fn answer(&self, method: &str, path: &str, body: &[u8]) -> (u16, String) {
        self.calls.lock().unwrap().push(format!("{method} {path}"));
        let mut slot = self.session.lock().unwrap();
        match (method, path.rsplit('/').next()) {
            ("POST", Some("sessions")) => {
                let request: CreateSession = serde_json::from_slice(body).unwrap();
                let view = new_session(&request);
                let spec = SessionCertSpec {
                    session_id: view.session.id.to_string(),
                    gateway: "gw-1".into(),
                    user: "alice".into(),
                    not_before: view.session.created_at,
                    not_after: view.session.expires_at,
                };
                let created = CreatedSession {
                    certificate: self.ca.sign_session_csr(&request.csr, &spec).unwrap(),
                    ca_certificate: self.ca.cert_pem().to_owned(),
                    gateway_address: self.gateway_address.clone(),
                    direct: true,
                    relays: Vec::new(),
                    session: view.clone(),
                };
                *slot = Some(view);
                (200, serde_json::to_string(&created).unwrap())
            }
            ("POST", Some("end")) => {
                let view = slot.as_mut().unwrap();
                if view.session.status != SessionStatus::Active {
                    let conflict =
                        r#"{"error":{"code":"conflict","message":"session is not active"}}"#;
                    return (409, conflict.to_owned());
                }
                view.session.status = SessionStatus::Ended;
                (200, serde_json::to_string(view).unwrap())
            }
            ("GET", _) => (200, serde_json::to_string(slot.as_ref().unwrap()).unwrap()),
            _ => (
                404,
                r#"{"error":{"code":"not_found","message":"no such route"}}"#.into(),
            ),
        }
    }

    fn set_status(&self, status: SessionStatus) {
        self.session
            .lock()
            .unwrap()
            .as_mut()
            .unwrap()
            .session
            .status = status;
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

fn new_session(request: &CreateSession) -> SessionView {
    let now = SystemTime::now();
    SessionView {
        session: Session {
            id: SessionId::new_random(),
            user: "alice".into(),
            resource: request.resource.clone(),
            account: request.account.clone(),
            gateway: "gw-1".into(),
            status: SessionStatus::Active,
            created_at: now,
            expires_at: now + Duration::from_secs(request.duration_secs),
            ended_at: None,
            reason: request.reason.clone(),
            binding: None,
        },
        end_cause: None,
        identity: None,
    }
}

async fn start_fake_kms() -> (KmsClient, Arc<FakeKms>) {
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fake = Arc::new(FakeKms {
        ca: CertificateAuthority::generate("test KMS CA", HOUR).unwrap(),
        gateway_address: closed.local_addr().unwrap().to_string(),
        session: Mutex::new(None),
        calls: Mutex::new(Vec::new()),
    });
    drop(closed);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let shared = fake.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let fake = shared.clone();
            let service = service_fn(move |request: Request<Incoming>| {
                let fake = fake.clone();
                async move {
                    let (parts, body) = request.into_parts();
                    let body = body.collect().await.unwrap().to_bytes();
                    let (status, answer) =
                        fake.answer(parts.method.as_str(), parts.uri.path(), &body);
                    let response = Response::builder()
                        .status(status)
                        .body(Full::new(Bytes::from(answer)))
                        .unwrap();
                    Ok::<_, Infallible>(response)
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service),
            );
        }
    });
    let client = KmsClient::new(&url, Some(Secret::new("kmsu_alice"))).unwrap();
    (client, fake)
}

/// One HTTPS GET to the local proxy, trusting the session's local CA.
async fn get_through_proxy(access: &AccessSession, token: Option<&str>) -> StatusCode {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(access.local_ca_pem().as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(crate::tls::crypto_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(access.local_addr())
        .await
        .unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut request = Request::get("/api/v1/namespaces").header("host", "127.0.0.1");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = sender
        .send_request(request.body(Empty::<Bytes>::new()).unwrap())
        .await
        .unwrap();
    response.status()
}

fn request_with_file(dir: &tempfile::TempDir, duration: Duration) -> AccessRequest {
    let mut request = AccessRequest::new("prod-k8s", "admin", duration);
    request.reason = Some("incident 42".into());
    request.kubeconfig = Some(KubeconfigTarget::File(
        dir.path().join("kube/prod-k8s-admin.yaml"),
    ));
    request
}

#[tokio::test]
async fn open_serves_the_session_and_close_cleans_everything_up() {
    let (client, fake) = start_fake_kms().await;
    let dir = tempfile::tempdir().unwrap();
    let access = open_session(&client, request_with_file(&dir, HOUR))
        .await
        .unwrap();

    let path = access.kubeconfig_path().unwrap().to_owned();
    let written = std::fs::read_to_string(&path).unwrap();
    assert!(written.contains(&access.server_url()), "{written}");
    assert!(written.contains(access.local_token().expose()));
    assert_eq!(access.context(), "kms-pam/prod-k8s/admin");
    assert!(access.local_addr().ip().is_loopback());
    assert_eq!(
        access.session().session.reason.as_deref(),
        Some("incident 42")
    );

    assert_eq!(
        get_through_proxy(&access, None).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get_through_proxy(&access, Some("guess")).await,
        StatusCode::UNAUTHORIZED
    );
    let token = access.local_token().expose().to_owned();
    // The right token passes the local check; the gateway is down, so the path answers 502.
    assert_eq!(
        get_through_proxy(&access, Some(&token)).await,
        StatusCode::BAD_GATEWAY
    );

    let addr = access.local_addr();
    let summary = access.close().await.unwrap();
    assert_eq!(summary.session.session.status, SessionStatus::Ended);
    assert!(!path.exists());
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    assert!(fake.calls().iter().any(|c| c.ends_with("/end")));
}

#[tokio::test]
async fn termination_is_noticed_and_close_still_succeeds() {
    let (client, fake) = start_fake_kms().await;
    let dir = tempfile::tempdir().unwrap();
    let access = open_session(&client, request_with_file(&dir, HOUR))
        .await
        .unwrap();
    fake.set_status(SessionStatus::Terminated);
    let end = tokio::time::timeout(Duration::from_secs(5), access.wait_ended())
        .await
        .unwrap();
    assert_eq!(end, SessionEnd::Terminated);
    let summary = access.close().await.unwrap();
    assert_eq!(summary.session.session.status, SessionStatus::Terminated);
}

#[tokio::test]
async fn expiry_is_noticed_by_the_local_clock() {
    let (client, _fake) = start_fake_kms().await;
    let dir = tempfile::tempdir().unwrap();
    let access = open_session(&client, request_with_file(&dir, Duration::from_secs(1)))
        .await
        .unwrap();
    let end = tokio::time::timeout(Duration::from_secs(5), access.wait_ended())
        .await
        .unwrap();
    assert_eq!(end, SessionEnd::Expired);
    access.close().await.unwrap();
}

#[tokio::test]
async fn a_failed_start_ends_the_granted_session() {
    let (client, fake) = start_fake_kms().await;
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-directory");
    std::fs::write(&blocker, "").unwrap();
    let mut request = AccessRequest::new("prod-k8s", "admin", HOUR);
    request.kubeconfig = Some(KubeconfigTarget::File(blocker.join("config.yaml")));
    let err = open_session(&client, request).await.unwrap_err();
    assert!(matches!(err, AccessError::Kubeconfig(_)), "{err:?}");
    let calls = fake.calls();
    assert!(calls[0].starts_with("POST /v1/sessions"), "{calls:?}");
    assert!(calls.last().unwrap().ends_with("/end"), "{calls:?}");
}

#[tokio::test]
async fn zero_durations_are_refused_before_asking_the_kms() {
    let (client, fake) = start_fake_kms().await;
    let request = AccessRequest::new("prod-k8s", "admin", Duration::from_millis(500));
    assert!(matches!(
        open_session(&client, request).await,
        Err(AccessError::ZeroDuration)
    ));
    assert!(fake.calls().is_empty());
}

#[tokio::test]
async fn dropping_an_open_session_cleans_up_in_the_background() {
    let (client, fake) = start_fake_kms().await;
    let dir = tempfile::tempdir().unwrap();
    let access = open_session(&client, request_with_file(&dir, HOUR))
        .await
        .unwrap();
    let path = access.kubeconfig_path().unwrap().to_owned();
    drop(access);
    assert!(!path.exists());
    for _ in 0..100 {
        if fake.calls().iter().any(|c| c.ends_with("/end")) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the session was not ended: {:?}", fake.calls());
}
