//! The gateway's link to KMS: [`KmsSessionManager`] and [`KmsCredentialStore`], the KMS-backed
//! implementations of the library traits, over the gateway's own API token.
//!
//! Session changes arrive through one long poll (`GET /v1/gateway/changes`) shared by all of the
//! gateway's sessions, so a termination reaches the gateway within a second. When KMS cannot be
//! reached the feed retries with backoff and, once back, re-reads every watched session, so a
//! change made while it was away is not missed. While KMS is away, admitted sessions keep running
//! until their expiry (which the gateway enforces itself); new sessions cannot be admitted.
//!
//! KMS refusing the gateway's token (401: the gateway was revoked) is different from KMS being
//! away: every watched session is cut at once, and no new one can be admitted, since every
//! check with KMS fails.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::credential::sealing::SealingKey;
use crate::credential::{CredentialError, CredentialStore, SessionCredential, Upstream};
use crate::kms::api::ErrorCode;
use crate::kms::client::{KmsClient, KmsError};
use crate::session::{
    Session, SessionEnding, SessionError, SessionId, SessionManager, SessionStatus, SessionWatch,
};
use crate::tls::UpstreamTls;

/// How long one long poll waits at KMS.
const POLL_WAIT_SECS: u64 = 20;
/// The longest pause between attempts while KMS is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

type Watchers = Mutex<HashMap<SessionId, watch::Sender<SessionStatus>>>;

/// Sessions as KMS knows them, for the gateway the client's token belongs to.
#[derive(Debug)]
pub struct KmsSessionManager {
    client: KmsClient,
    watchers: Arc<Watchers>,
}

impl KmsSessionManager {
    /// Starts the change feed; it stops when the manager is dropped.
    pub fn start(client: KmsClient) -> Arc<Self> {
        let manager = Arc::new(Self {
            client,
            watchers: Arc::default(),
        });
        tokio::spawn(feed(Arc::downgrade(&manager)));
        manager
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, watch::Sender<SessionStatus>>> {
        self.watchers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn publish(&self, id: &SessionId, status: SessionStatus) {
        let mut watchers = self.lock();
        if let Some(sender) = watchers.get(id) {
            sender.send_replace(status);
        }
        if status != SessionStatus::Active {
            watchers.remove(id);
        }
    }

    /// Cuts every watched session: KMS no longer accepts this gateway.
    fn cut_all(&self) {
        let mut watchers = self.lock();
        for sender in watchers.values() {
            sender.send_replace(SessionStatus::Terminated);
        }
        watchers.clear();
    }

    /// Re-reads every watched session (after the feed lost track).
    async fn refresh_all(&self) {
        let ids: Vec<SessionId> = self.lock().keys().cloned().collect();
        for id in ids {
            match self.client.gateway().session(&id).await {
                Ok(view) => self.publish(&id, view.session.status),
                Err(e) if e.is_not_found() => self.publish(&id, SessionStatus::Terminated),
                Err(e) => tracing::warn!(session = %id, error = %e, "cannot re-read session"),
            }
        }
    }
}

async fn feed(manager: Weak<KmsSessionManager>) {
    let mut seq: Option<u64> = None;
    let mut backoff = Duration::from_millis(200);
    loop {
        let Some(m) = manager.upgrade() else { return };
        let (after, wait) = seq.map_or((0, 0), |s| (s, POLL_WAIT_SECS));
        let polled = m.client.gateway().changes(after, wait).await;
        match polled {
            Ok(answer) => {
                backoff = Duration::from_millis(200);
                let lost_track = seq.is_none() || seq.is_some_and(|s| answer.seq < s);
                for change in &answer.changes {
                    m.publish(&SessionId::new(change.session_id.clone()), change.status);
                }
                seq = Some(answer.seq);
                if lost_track {
                    m.refresh_all().await;
                }
            }
            Err(e) if e.code() == Some(ErrorCode::Unauthenticated) => {
                tracing::error!(error = %e, "KMS refuses this gateway's token (revoked?): \
                    cutting every session; a new `kms-pam gateway create` and enrollment bring \
                    it back");
                m.cut_all();
                seq = None;
                drop(m);
                tokio::time::sleep(MAX_BACKOFF).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "KMS change feed interrupted");
                seq = None;
                drop(m);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

fn session_error(id: &SessionId, e: KmsError) -> SessionError {
    if e.is_not_found() {
        SessionError::NotFound(id.clone())
    } else if e.code() == Some(ErrorCode::Unauthenticated) {
        SessionError::unavailable(format!(
            "KMS refuses this gateway's token; the gateway was revoked and admits no session \
             until it is enrolled again ({e})"
        ))
    } else {
        SessionError::unavailable(e.to_string())
    }
}

#[async_trait]
impl SessionManager for KmsSessionManager {
    async fn get(&self, id: &SessionId) -> Result<Session, SessionError> {
        let view = self
            .client
            .gateway()
            .session(id)
            .await
            .map_err(|e| session_error(id, e))?;
        Ok(view.session)
    }

    async fn watch(&self, id: &SessionId) -> Result<SessionWatch, SessionError> {
        let session = self.get(id).await?;
        let receiver = {
            let mut watchers = self.lock();
            let sender = watchers
                .entry(id.clone())
                .or_insert_with(|| watch::channel(session.status).0);
            sender.send_replace(session.status);
            sender.subscribe()
        };
        Ok(SessionWatch::new(receiver, session.expires_at))
    }

    async fn ending(&self, id: &SessionId) -> Result<SessionEnding, SessionError> {
        let view = self
            .client
            .gateway()
            .session(id)
            .await
            .map_err(|e| session_error(id, e))?;
        let end_cause = view.end_cause.map(|cause| cause.as_str().to_owned());
        Ok(SessionEnding::new(
            view.session.status,
            view.session.ended_at,
            end_cause,
        ))
    }
}

/// Credentials fetched from KMS for sessions bound to this gateway, each token sealed to the
/// gateway's sealing key and opened here.
#[derive(Debug)]
pub struct KmsCredentialStore {
    client: KmsClient,
    sealing: Arc<SealingKey>,
    gateway: String,
}

impl KmsCredentialStore {
    /// A store asking KMS with the gateway's token, opening the tokens KMS sealed to `sealing`
    /// for gateway `gateway` (its name).
    pub fn new(client: KmsClient, sealing: Arc<SealingKey>, gateway: impl Into<String>) -> Self {
        Self {
            client,
            sealing,
            gateway: gateway.into(),
        }
    }
}

#[async_trait]
impl CredentialStore for KmsCredentialStore {
    async fn credential(&self, session: &Session) -> Result<SessionCredential, CredentialError> {
        let answer = self
            .client
            .gateway()
            .credential(&session.id)
            .await
            .map_err(|e| match e.code() {
                Some(ErrorCode::NotFound) => CredentialError::NotFound {
                    resource: session.resource.clone(),
                    account: session.account.clone(),
                },
                Some(ErrorCode::Forbidden | ErrorCode::Invalid) => {
                    CredentialError::denied(e.to_string())
                }
                _ => CredentialError::unavailable(e.to_string()),
            })?;
        let url = answer.url.parse().map_err(|e| {
            CredentialError::denied(format!(
                "resource {} has an invalid URL: {e}",
                session.resource
            ))
        })?;
        let tls = match (answer.ssl_verify, answer.ca_cert) {
            (false, _) => UpstreamTls::InsecureSkipVerify,
            (true, Some(pem)) => UpstreamTls::CaBundle(pem),
            (true, None) => UpstreamTls::SystemRoots,
        };
        let token = self
            .sealing
            .open(&answer.sealed_token, session.id.as_str(), &self.gateway)
            .map_err(|e| CredentialError::denied(format!("session {}: {e}", session.id)))?;
        Ok(SessionCredential::new(Upstream { url, tls }, token).with_recording(answer.recording))
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::SystemTime;

    use bytes::Bytes;
    use http::{Request, Response};
    use http_body_util::Full;
    use hyper::body::Incoming;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use tokio::net::TcpListener;

    use super::*;
    use crate::kms::api::SessionView;
    use crate::secret::Secret;
    use crate::session::Session;

    /// A KMS that knows session `s1` (active) and answers change polls until `revoked` is set,
    /// then refuses the gateway's token.
    async fn kms(revoked: Arc<AtomicBool>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let now = SystemTime::now();
        let view = SessionView {
            session: Session {
                id: SessionId::new("s1"),
                user: "alice".into(),
                resource: "prod".into(),
                account: "admin".into(),
                gateway: "gw".into(),
                status: SessionStatus::Active,
                created_at: now,
                expires_at: now + Duration::from_secs(600),
                ended_at: None,
                reason: None,
                binding: None,
            },
            end_cause: None,
            identity: None,
        };
        let view = serde_json::to_string(&view).unwrap();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (revoked, view) = (revoked.clone(), view.clone());
                let service = service_fn(move |request: Request<Incoming>| {
                    let (revoked, view) = (revoked.clone(), view.clone());
                    async move {
                        let (status, body) = if revoked.load(Ordering::SeqCst) {
                            (
                                401,
                                r#"{"error":{"code":"unauthenticated","message":"no"}}"#.into(),
                            )
                        } else if request.uri().path().starts_with("/v1/gateway/changes") {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            (200, r#"{"seq":1,"changes":[]}"#.to_owned())
                        } else {
                            (200, view)
                        };
                        let response = Response::builder()
                            .status(status)
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from(body)))
                            .unwrap();
                        Ok::<_, Infallible>(response)
                    }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        url
    }

    #[tokio::test]
    async fn a_refused_gateway_token_cuts_every_watched_session() {
        let revoked = Arc::new(AtomicBool::new(false));
        let url = kms(revoked.clone()).await;
        let client = KmsClient::new(&url, Some(Secret::new("kmsg_x"))).unwrap();
        let manager = KmsSessionManager::start(client);
        let mut watch = manager.watch(&SessionId::new("s1")).await.unwrap();
        assert_eq!(watch.current(), SessionStatus::Active);
        revoked.store(true, Ordering::SeqCst);
        let ended = tokio::time::timeout(Duration::from_secs(3), watch.ended()).await;
        assert_eq!(ended.unwrap(), SessionStatus::Terminated);
        let refused = manager.get(&SessionId::new("s1")).await;
        assert!(matches!(refused, Err(SessionError::Unavailable(_))));
    }
}
