//! The OpenID provider double: discovery, its current keys (changed by the test: rotation),
//! a token endpoint answering what the test scripted, and a device authorization endpoint. It
//! records what it received (forms, the Authorization header). ID tokens are signed ES256 with
//! P-256 keys made here with ring.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::task::AbortHandle;

pub(crate) use crate::server::sso::test_key::Key;

pub(crate) const CLIENT_ID: &str = "kms";
pub(crate) const CLIENT_SECRET: &str = "s3cret-of-the-kms-client";
/// What the double's device endpoint hands out.
pub(crate) const DEVICE_CODE: &str = "device-code-1";

/// A request the double received.
#[derive(Clone, Debug)]
pub(crate) struct Received {
    pub(crate) form: HashMap<String, String>,
    pub(crate) authorization: Option<String>,
}

#[derive(Default)]
struct Script {
    keys: Vec<Value>,
    /// What `/token` answers next, in order; with none left it refuses.
    answers: VecDeque<(u16, Value)>,
    received: Vec<(String, Received)>,
}

/// The OpenID provider double, on 127.0.0.1:0.
pub(crate) struct Double {
    pub(crate) issuer: String,
    script: Arc<Mutex<Script>>,
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Double {
    /// Serves, publishing `keys`.
    pub(crate) async fn start(keys: &[&Key]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let double = Self {
            issuer: format!("http://{addr}"),
            script: Arc::default(),
            tasks: Arc::default(),
        };
        double.publish(keys);
        let (script, tasks) = (double.script.clone(), double.tasks.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let script = script.clone();
                let service = service_fn(move |request| {
                    let script = script.clone();
                    async move { Ok::<_, hyper::Error>(serve(addr, &script, request).await) }
                });
                let connection = tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                tasks.lock().unwrap().push(connection.abort_handle());
            }
        });
        double.tasks.lock().unwrap().push(accept.abort_handle());
        double
    }

    /// Publishes `keys` from now on (a rotation).
    pub(crate) fn publish(&self, keys: &[&Key]) {
        self.script.lock().unwrap().keys = keys.iter().map(|k| k.jwk().clone()).collect();
    }

    /// `/token`'s next answer.
    pub(crate) fn answer(&self, status: u16, body: Value) {
        let mut script = self.script.lock().unwrap();
        script.answers.push_back((status, body));
    }

    /// What `path` received, in order.
    pub(crate) fn received(&self, path: &str) -> Vec<Received> {
        let script = self.script.lock().unwrap();
        let at = script.received.iter().filter(|(p, _)| p == path);
        at.map(|(_, r)| r.clone()).collect()
    }

    /// Stops: the listener and every connection close.
    pub(crate) fn stop(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    /// An ID token's claims for `subject` (`alice@example.com`, user name `alice`).
    pub(crate) fn claims(&self, nonce: Option<&str>, groups: &[&str]) -> Value {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let mut claims = json!({"iss": self.issuer, "aud": CLIENT_ID, "sub": "u-alice",
            "exp": now + 300, "iat": now, "email": "alice@example.com", "name": "Alice A.",
            "preferred_username": "alice", "groups": groups});
        if let Some(nonce) = nonce {
            claims["nonce"] = json!(nonce);
        }
        claims
    }

    /// [`Self::claims`] of another person: each field of `person` replaces the claim, a null
    /// removes it.
    pub(crate) fn claims_of(&self, nonce: Option<&str>, groups: &[&str], person: &Value) -> Value {
        let mut claims = self.claims(nonce, groups);
        for (name, value) in person.as_object().expect("a person is an object") {
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(name);
            } else {
                claims[name] = value.clone();
            }
        }
        claims
    }
}

impl Drop for Double {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn serve(
    addr: SocketAddr,
    script: &Mutex<Script>,
    request: http::Request<hyper::body::Incoming>,
) -> http::Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    let authorization = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = request.into_body().collect().await.unwrap().to_bytes();
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let issuer = format!("http://{addr}");
    let mut script = script.lock().unwrap();
    let received = Received {
        form,
        authorization,
    };
    script.received.push((path.clone(), received));
    let (status, answer) = match path.as_str() {
        "/.well-known/openid-configuration" => (
            200,
            json!({"issuer": issuer, "authorization_endpoint": format!("{issuer}/authorize"),
                "token_endpoint": format!("{issuer}/token"), "jwks_uri": format!("{issuer}/jwks"),
                "device_authorization_endpoint": format!("{issuer}/device")}),
        ),
        "/jwks" => (200, json!({ "keys": script.keys })),
        "/device" => (
            200,
            json!({"device_code": DEVICE_CODE, "user_code": "WDJB-MJHT",
                "verification_uri": format!("{issuer}/activate"), "expires_in": 600, "interval": 1}),
        ),
        "/token" => script.answers.pop_front().unwrap_or((
            400,
            json!({"error": "invalid_grant", "error_description": "nothing scripted"}),
        )),
        _ => (404, json!({"error": "not_found"})),
    };
    http::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(answer.to_string())))
        .unwrap()
}

/// A token endpoint's answer carrying `id_token` and the provider's refresh token `refresh`.
pub(crate) fn tokens(id_token: &str, refresh: &str) -> Value {
    json!({"access_token": "provider-access", "token_type": "Bearer", "expires_in": 300,
        "id_token": id_token, "refresh_token": refresh})
}
