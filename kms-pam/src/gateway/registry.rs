//! The gateway's active sessions: admitted once per session (KMS says active, bound to this
//! gateway, credential fetched), then shared by all of the session's tunnels until it stops.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::OnceCell;

use crate::audit::{AuditEvent, AuditEventKind, AuditSink};
use crate::credential::{CredentialError, CredentialStore};
use crate::metrics::GatewayObserver;
use crate::proxy::deadline::stopped_message;
use crate::proxy::in_flight::InFlight;
use crate::proxy::{GatewaySession, ProxyError, SessionDeadline, UpstreamConnector};
use crate::session::{SessionEnding, SessionError, SessionId, SessionManager, SessionStatus};
use crate::transport::TunnelPeer;

type Slot = Arc<OnceCell<Arc<GatewaySession>>>;

/// How long a stopped session's requests get to record their ends before the session's.
const END_WAIT: Duration = Duration::from_secs(3);
/// How long the gateway asks KMS how a stopped session ended before it records the end
/// without KMS's view.
const ENDING_WAIT: Duration = Duration::from_secs(2);

/// Admits sessions and keeps them while they are active.
pub(crate) struct SessionRegistry {
    gateway: String,
    sessions: Arc<dyn SessionManager>,
    credentials: Arc<dyn CredentialStore>,
    audit: Arc<dyn AuditSink>,
    observer: Arc<dyn GatewayObserver>,
    connector: Arc<dyn UpstreamConnector>,
    active: Mutex<HashMap<SessionId, Slot>>,
}

impl SessionRegistry {
    /// A registry for the gateway named `gateway`.
    pub(crate) fn new(
        gateway: String,
        sessions: Arc<dyn SessionManager>,
        credentials: Arc<dyn CredentialStore>,
        audit: Arc<dyn AuditSink>,
        observer: Arc<dyn GatewayObserver>,
        connector: Arc<dyn UpstreamConnector>,
    ) -> Arc<Self> {
        Arc::new(Self {
            gateway,
            sessions,
            credentials,
            audit,
            observer,
            connector,
            active: Mutex::default(),
        })
    }

    /// The number of sessions with a live entry.
    #[cfg(test)]
    pub(crate) fn active_sessions(&self) -> usize {
        lock(&self.active).len()
    }

    /// The observer this registry notifies.
    pub(crate) fn observer(&self) -> &dyn GatewayObserver {
        &*self.observer
    }

    /// The session of an authenticated tunnel, admitting it on its first tunnel.
    pub(crate) async fn attach(
        self: &Arc<Self>,
        peer: &TunnelPeer,
    ) -> Result<Arc<GatewaySession>, ProxyError> {
        let id = &peer.session_id;
        let slot = lock(&self.active).entry(id.clone()).or_default().clone();
        let admitted = slot.get_or_try_init(|| self.admit(peer)).await;
        match admitted {
            Ok(session) => {
                session.deadline().check()?;
                Ok(session.clone())
            }
            Err(error) => {
                let mut active = lock(&self.active);
                if active
                    .get(id)
                    .is_some_and(|s| Arc::ptr_eq(s, &slot) && !s.initialized())
                {
                    active.remove(id);
                }
                Err(error)
            }
        }
    }

    async fn admit(self: &Arc<Self>, peer: &TunnelPeer) -> Result<Arc<GatewaySession>, ProxyError> {
        let id = &peer.session_id;
        let session = self.sessions.get(id).await.map_err(session_error)?;
        if session.status != SessionStatus::Active {
            let message = stopped_message(id, session.status, session.expires_at);
            return Err(ProxyError::session(message));
        }
        if session.gateway != self.gateway {
            return Err(ProxyError::session(format!(
                "kms-pam session {id} is bound to gateway {:?}, not this one ({:?})",
                session.gateway, self.gateway
            )));
        }
        let credential = self
            .credentials
            .credential(&session)
            .await
            .map_err(credential_error)?;
        let upstream = self
            .connector
            .connect(&session.resource, &credential.upstream)?;
        let expires_at = peer
            .not_after
            .map_or(session.expires_at, |t| t.min(session.expires_at));
        let mut watch = self.sessions.watch(id).await.map_err(session_error)?;
        let deadline = SessionDeadline::new(id.clone(), expires_at);
        self.record(
            id,
            AuditEventKind::SessionStarted {
                user: session.user.clone(),
                resource: session.resource.clone(),
                account: session.account.clone(),
                gateway: session.gateway.clone(),
                reason: session.reason.clone(),
                created_at: Some(session.created_at),
                expires_at: Some(session.expires_at),
                binding: session.binding.clone().map(Box::new),
            },
        );
        self.observer.session_admitted();
        tracing::info!(session = %id, user = %session.user, resource = %session.resource,
            account = %session.account, "session admitted");

        let registry: Weak<Self> = Arc::downgrade(self);
        let watched = deadline.clone();
        let watched_id = id.clone();
        let in_flight = InFlight::default();
        let pending = in_flight.clone();
        tokio::spawn(async move {
            let status = tokio::select! {
                status = watch.ended() => status,
                () = watched.token().cancelled() => watched.stopped().unwrap_or(SessionStatus::Terminated),
            };
            watched.end(status);
            if let Some(registry) = registry.upgrade() {
                registry.forget(&watched_id, status, pending).await;
            }
        });
        let recording = credential.recording;
        Ok(Arc::new(
            GatewaySession::with_deadline(session, credential.token, upstream, deadline)
                .with_recording(recording)
                .with_in_flight(in_flight),
        ))
    }

    /// Records the session's end once its requests and recordings have recorded theirs (cut
    /// streams end at once; [`END_WAIT`] bounds a request that does not), so the end is the last
    /// event of the session's signed record.
    async fn forget(&self, id: &SessionId, status: SessionStatus, in_flight: InFlight) {
        lock(&self.active).remove(id);
        self.observer.session_released();
        tracing::info!(session = %id, %status, "session stopped; its streams are cut");
        if !in_flight.idle(END_WAIT).await {
            tracing::warn!(session = %id, "requests of the stopped session still run; its end \
                is recorded now and their later events are not");
        }
        let (status, ended_at, end_cause) = match self.kms_ending(id).await {
            Some(end) => (end.status, end.ended_at, end.end_cause),
            None => (status, None, None),
        };
        self.record(
            id,
            AuditEventKind::SessionEnded {
                status,
                ended_at,
                end_cause,
            },
        );
        if let Err(e) = self.audit.flush().await {
            tracing::error!(session = %id, error = %e, "audit flush after session end failed");
        }
    }

    /// The session's end as KMS holds it, to sign into the record: `None` when KMS has not
    /// ended it (the gateway stopped first) or cannot say within [`ENDING_WAIT`].
    async fn kms_ending(&self, id: &SessionId) -> Option<SessionEnding> {
        match tokio::time::timeout(ENDING_WAIT, self.sessions.ending(id)).await {
            Ok(Ok(end)) if end.status != SessionStatus::Active && end.ended_at.is_some() => {
                Some(end)
            }
            Ok(Ok(_)) => None,
            Ok(Err(e)) => {
                tracing::warn!(session = %id, error = %e, "cannot ask KMS how the session \
                    ended; its end is recorded as the gateway saw it");
                None
            }
            Err(_) => {
                tracing::warn!(session = %id, "KMS did not say in time how the session ended; \
                    its end is recorded as the gateway saw it");
                None
            }
        }
    }

    fn record(&self, id: &SessionId, kind: AuditEventKind) {
        if let Err(e) = self.audit.record(AuditEvent::now(id.clone(), kind)) {
            tracing::error!(session = %id, error = %e, "audit event not recorded");
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every update is a single insert or remove, so a poisoned map is still consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn session_error(e: SessionError) -> ProxyError {
    match e {
        SessionError::Unavailable(_) => ProxyError::control_plane(format!(
            "the gateway cannot check the session with KMS: {e}"
        )),
        other => ProxyError::session(other.to_string()),
    }
}

fn credential_error(e: CredentialError) -> ProxyError {
    match e {
        CredentialError::Unavailable(_) => ProxyError::control_plane(format!(
            "the gateway cannot fetch the session's credential: {e}"
        )),
        other => ProxyError::forbidden(other.to_string()),
    }
}

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;
