//! API tests: the real router served on 127.0.0.1:0, driven over HTTP with hyper-util's client.
//! Every answer body is recorded so tests can check that no secret ever leaked into one.

mod backdoor;
mod binding;
mod bootstrap;
mod console;
mod events;
mod forged_gateway;
mod gateway_scope;
mod gateways;
mod grant_lifetime;
mod https;
mod limits;
mod liveness;
mod projects;
mod relays;
mod replicas;
mod resource_edit;
mod revocation;
mod rights;
mod route_table;
mod sealing;
mod secrets;
mod sessions;
mod sso;
mod sso_people;
mod sso_refusals;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{Server, ServerConfig, ServerError};
use crate::tls::{generate_csr, SessionKey};

/// A service-account token that must never appear in an answer except the credential one.
pub(super) const SA_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.c2VydmljZS1hY2NvdW50.sig-7c1d";

/// An answer.
pub(super) struct Reply {
    pub(super) status: StatusCode,
    pub(super) json: Value,
}

impl Reply {
    /// The error code of an error answer.
    pub(super) fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }

    /// The error message of an error answer.
    pub(super) fn message(&self) -> &str {
        self.json["error"]["message"].as_str().unwrap_or("")
    }

    /// Asserts the status and returns the JSON body.
    #[track_caller]
    pub(super) fn expect(self, status: StatusCode) -> Value {
        assert_eq!(self.status, status, "answer: {}", self.json);
        self.json
    }
}

/// The audit key the test gateway `name` signs its events with.
pub(super) fn gateway_audit_key(name: &str) -> crate::audit::evidence::signing::SigningKey {
    let digest = ring::digest::digest(&ring::digest::SHA256, name.as_bytes());
    let mut seed = [0u8; 32];
    seed.copy_from_slice(digest.as_ref());
    crate::audit::evidence::signing::SigningKey::from_seed(&seed)
}

/// The credential sealing key of the test gateway `name`.
pub(super) fn gateway_sealing_key(name: &str) -> crate::credential::sealing::SealingKey {
    let digest = ring::digest::digest(&ring::digest::SHA256, format!("seal {name}").as_bytes());
    let mut seed = [0u8; 32];
    seed.copy_from_slice(digest.as_ref());
    crate::credential::sealing::SealingKey::from_seed(&seed)
}

/// A KMS serving from a temporary data directory.
pub(super) struct Kms {
    pub(super) dir: TempDir,
    pub(super) addr: SocketAddr,
    pub(super) admin: String,
    pub(super) ca_pem: String,
    client: Client<HttpConnector, Full<Bytes>>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ServerError>>>,
    bodies: Arc<Mutex<Vec<(String, String)>>>,
}

impl Kms {
    pub(super) async fn start() -> Self {
        Self::start_in(tempfile::tempdir().unwrap()).await
    }

    /// Starts with the configuration `configure` makes of the default one.
    pub(super) async fn start_with(configure: impl FnOnce(ServerConfig) -> ServerConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = configure(ServerConfig::new(Self::data_dir_of(dir.path())));
        Self::serve(dir, config).await
    }

    /// Starts on `dir/data`, reading the admin token from the file the first start wrote.
    pub(super) async fn start_in(dir: TempDir) -> Self {
        let config = ServerConfig::new(Self::data_dir_of(dir.path()));
        Self::serve(dir, config).await
    }

    async fn serve(dir: TempDir, config: ServerConfig) -> Self {
        let server = Server::open(config.clone()).await.unwrap();
        let admin = std::fs::read_to_string(config.admin_token_path()).unwrap();
        let ca_pem = server.ca_certificate_pem().to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(listener, async move {
            let _ = stopped.await;
        }));
        Self {
            dir,
            addr,
            admin,
            ca_pem,
            client: Client::builder(TokioExecutor::new()).build_http(),
            stop: Some(stop),
            task: Some(task),
            bodies: Arc::default(),
        }
    }

    pub(super) fn data_dir_of(root: &Path) -> PathBuf {
        root.join("data")
    }

    pub(super) fn data_dir(&self) -> PathBuf {
        Self::data_dir_of(self.dir.path())
    }

    /// Stops the server and gives the data directory back for a restart.
    pub(super) async fn stop(mut self) -> TempDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
        self.dir
    }

    /// Sends a request with an optional bearer token and raw body.
    pub(super) async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Reply {
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr));
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let request = request.body(Full::new(Bytes::from(body))).unwrap();
        let response = self.client.request(request).await.unwrap();
        let status = response.status();
        let metrics = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|t| t.as_bytes().starts_with(b"application/openmetrics-text"));
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        self.bodies
            .lock()
            .unwrap()
            .push((path.to_owned(), text.clone()));
        let json = if text.is_empty() {
            Value::Null
        } else if metrics {
            Value::String(text)
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
        };
        Reply { status, json }
    }

    /// Sends a JSON request (`body` `Null` means no body).
    pub(super) async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> Reply {
        if body.is_null() {
            return self.raw(method, path, token, None, Vec::new()).await;
        }
        let bytes = serde_json::to_vec(&body).unwrap();
        self.raw(method, path, token, Some("application/json"), bytes)
            .await
    }

    pub(super) async fn get(&self, path: &str, token: &str) -> Reply {
        self.call(Method::GET, path, Some(token), Value::Null).await
    }

    pub(super) async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(token), body).await
    }

    pub(super) async fn delete(&self, path: &str, token: &str) -> Reply {
        self.call(Method::DELETE, path, Some(token), Value::Null)
            .await
    }

    /// Creates project `name`.
    pub(super) async fn project(&self, name: &str) {
        self.post("/v1/projects", &self.admin, json!({ "name": name }))
            .await
            .expect(StatusCode::CREATED);
    }

    /// Makes `user` a member of `project` with `role`.
    pub(super) async fn member(&self, project: &str, user: &str, role: &str) {
        let path = format!("/v1/projects/{project}/members/{user}");
        self.call(
            Method::PUT,
            &path,
            Some(&self.admin),
            json!({ "role": role }),
        )
        .await
        .expect(StatusCode::OK);
    }

    /// Creates a user and returns its token.
    pub(super) async fn user(&self, name: &str, admin: bool) -> String {
        let body = json!({"name": name, "admin": admin});
        let created = self.post("/v1/users", &self.admin, body).await;
        let created = created.expect(StatusCode::CREATED);
        created["token"].as_str().unwrap().to_owned()
    }

    /// Creates a gateway; returns its enrollment token.
    pub(super) async fn pending_gateway(&self, name: &str) -> String {
        let created = self
            .post("/v1/gateways", &self.admin, json!({"name": name}))
            .await
            .expect(StatusCode::CREATED);
        created["enrollment_token"].as_str().unwrap().to_owned()
    }

    /// Creates and enrolls a gateway at `127.0.0.1:<port>` with audit key
    /// [`gateway_audit_key`]`(name)` and sealing key [`gateway_sealing_key`]`(name)`; returns
    /// its gateway token.
    pub(super) async fn gateway(&self, name: &str) -> String {
        let enrollment = self.pending_gateway(name).await;
        let (_key, csr) = generate_csr(name).unwrap();
        let audit_key = gateway_audit_key(name).public_key();
        let sealing_key = gateway_sealing_key(name).public_key();
        let body = json!({"name": name, "enrollment_token": enrollment, "csr": csr,
                          "address": "127.0.0.1:8443", "audit_key": audit_key,
                          "sealing_key": sealing_key});
        let enrolled = self
            .call(Method::POST, "/v1/gateways/enroll", None, body)
            .await
            .expect(StatusCode::OK);
        enrolled["gateway_token"].as_str().unwrap().to_owned()
    }

    /// Creates resource `resource` on `gateway` with account `admin` (max 1 h) holding
    /// [`SA_TOKEN`], in the project `default`.
    pub(super) async fn resource(&self, resource: &str, gateway: &str) {
        self.resource_at("/v1", resource, gateway).await;
    }

    /// [`Self::resource`] under the routes at `prefix` (`/v1/projects/P`).
    pub(super) async fn resource_at(&self, prefix: &str, resource: &str, gateway: &str) {
        // A gateway serves `default` from its creation; another project needs an assignment.
        if let Some(project) = prefix.strip_prefix("/v1/projects/") {
            let path = format!("/v1/gateways/{gateway}/projects");
            self.post(&path, &self.admin, json!({ "project": project }))
                .await
                .expect(StatusCode::OK);
        }
        let body = json!({"kind": "kubernetes", "name": resource, "gateway": gateway,
                          "url": "https://10.0.0.1:6443", "ssl_verify": true});
        self.post(&format!("{prefix}/resources"), &self.admin, body)
            .await
            .expect(StatusCode::CREATED);
        let body = json!({"name": "admin", "token": SA_TOKEN, "max_duration_secs": 3600});
        let path = format!("{prefix}/resources/{resource}/accounts");
        self.post(&path, &self.admin, body)
            .await
            .expect(StatusCode::CREATED);
    }

    /// Grants `resource/admin` to `user` for at most `max_secs`, in the project `default`.
    pub(super) async fn grant(&self, resource: &str, user: &str, max_secs: u64) -> String {
        self.grant_at("/v1", resource, user, max_secs).await
    }

    /// [`Self::grant`] under the routes at `prefix`.
    pub(super) async fn grant_at(
        &self,
        prefix: &str,
        resource: &str,
        user: &str,
        max_secs: u64,
    ) -> String {
        let body = json!({"resource": resource, "account": "admin", "user": user,
                          "max_duration_secs": max_secs});
        let grant = self
            .post(&format!("{prefix}/grants"), &self.admin, body)
            .await;
        grant.expect(StatusCode::CREATED)["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Requests a session for `resource/admin` with a fresh CSR, in the project `default`.
    pub(super) async fn open_session(&self, token: &str, resource: &str, secs: u64) -> Reply {
        self.open_session_at("/v1", token, resource, secs).await
    }

    /// [`Self::open_session`] under the routes at `prefix`.
    pub(super) async fn open_session_at(
        &self,
        prefix: &str,
        token: &str,
        resource: &str,
        secs: u64,
    ) -> Reply {
        self.post(
            &format!("{prefix}/sessions"),
            token,
            session_body(resource, secs),
        )
        .await
    }

    /// Opens a session and returns its id.
    pub(super) async fn session_id(&self, prefix: &str, token: &str, resource: &str) -> String {
        let created = self.open_session_at(prefix, token, resource, 300).await;
        created.expect(StatusCode::CREATED)["session"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The text of `GET /metrics`.
    pub(super) async fn metrics(&self) -> String {
        let request = http::Request::builder()
            .uri(format!("http://{}/metrics", self.addr))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = self.client.request(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    /// Asserts that no recorded answer except the credential endpoint's holds `secret`.
    #[track_caller]
    pub(super) fn assert_never_leaked(&self, secret: &str) {
        let bodies = self.bodies.lock().unwrap();
        assert!(!bodies.is_empty());
        for (path, body) in bodies.iter() {
            if path.ends_with("/credential") {
                continue;
            }
            assert!(!body.contains(secret), "{path} answered a secret: {body}");
        }
    }
}

/// The body of `POST /v1/sessions` for `resource/admin`, with a fresh CSR.
pub(super) fn session_body(resource: &str, secs: u64) -> Value {
    let (_key, csr) = SessionKey::generate().unwrap();
    json!({"resource": resource, "account": "admin", "duration_secs": secs,
           "reason": "testing", "csr": csr})
}
