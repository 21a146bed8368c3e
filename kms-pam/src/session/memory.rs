//! An in-memory [`SessionManager`]: for tests, examples and standalone gateways. It is its own
//! control plane too: sessions are created, ended and terminated with its inherent methods.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

use async_trait::async_trait;
use tokio::sync::watch;

use super::{
    EndCause, NewSession, Session, SessionError, SessionId, SessionManager, SessionStatus,
    SessionWatch,
};

struct Entry {
    session: Session,
    status: watch::Sender<SessionStatus>,
}

/// Sessions kept in a map. Expiry is evaluated on read and by [`SessionWatch`]; nothing runs in the
/// background.
#[derive(Default)]
pub struct MemorySessionManager {
    sessions: Mutex<HashMap<SessionId, Entry>>,
}

impl MemorySessionManager {
    /// An empty manager.
    pub fn new() -> Self {
        Self::default()
    }

    /// Inserts a session as given (id, times and status included): for standalone gateways whose
    /// sessions are issued elsewhere, and for tests.
    pub fn insert(&self, session: Session) {
        let (status, _) = watch::channel(session.status);
        let mut map = self.lock();
        map.insert(session.id.clone(), Entry { session, status });
    }

    /// All sessions, newest first.
    pub fn list(&self) -> Vec<Session> {
        let now = SystemTime::now();
        let mut all: Vec<Session> = self
            .lock()
            .values()
            .map(|e| with_status_at(&e.session, now))
            .collect();
        all.sort_by_key(|s| std::cmp::Reverse(s.created_at));
        all
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, Entry>> {
        // A panic while holding this lock cannot leave the map half-updated (each update is one
        // assignment), so a poisoned lock is still safe to use.
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn with_status_at(session: &Session, now: SystemTime) -> Session {
    let mut s = session.clone();
    s.status = session.status_at(now);
    s
}

impl MemorySessionManager {
    /// Records a new `Active` session expiring `new.duration` from now.
    pub async fn create(&self, new: NewSession) -> Result<Session, SessionError> {
        if new.duration.is_zero() {
            return Err(SessionError::invalid("duration must be greater than zero"));
        }
        let now = SystemTime::now();
        let session = Session {
            id: SessionId::new_random(),
            user: new.user,
            resource: new.resource,
            account: new.account,
            gateway: new.gateway,
            status: SessionStatus::Active,
            created_at: now,
            expires_at: now + new.duration,
            ended_at: None,
            reason: new.reason,
            binding: None,
        };
        self.insert(session.clone());
        Ok(session)
    }

    /// Ends an active session for `cause` and tells its watchers; ending an already ended session
    /// returns it unchanged.
    pub async fn end(&self, id: &SessionId, cause: EndCause) -> Result<Session, SessionError> {
        self.end_locked(id, cause)
    }

    /// Ends a session on an administrator's order.
    pub async fn terminate(&self, id: &SessionId) -> Result<Session, SessionError> {
        self.end_locked(id, EndCause::Termination)
    }
}

#[async_trait]
impl SessionManager for MemorySessionManager {
    async fn get(&self, id: &SessionId) -> Result<Session, SessionError> {
        let map = self.lock();
        let entry = map
            .get(id)
            .ok_or_else(|| SessionError::NotFound(id.clone()))?;
        Ok(with_status_at(&entry.session, SystemTime::now()))
    }

    async fn watch(&self, id: &SessionId) -> Result<SessionWatch, SessionError> {
        let map = self.lock();
        let entry = map
            .get(id)
            .ok_or_else(|| SessionError::NotFound(id.clone()))?;
        Ok(SessionWatch::new(
            entry.status.subscribe(),
            entry.session.expires_at,
        ))
    }
}

impl MemorySessionManager {
    fn end_locked(&self, id: &SessionId, cause: EndCause) -> Result<Session, SessionError> {
        let mut map = self.lock();
        let entry = map
            .get_mut(id)
            .ok_or_else(|| SessionError::NotFound(id.clone()))?;
        let now = SystemTime::now();
        if entry.session.status_at(now) == SessionStatus::Active {
            entry.session.status = cause.status();
            entry.session.ended_at = Some(now);
            entry.status.send_replace(entry.session.status);
        } else if entry.session.status == SessionStatus::Active {
            // Expired while nobody looked: record it as such, whatever the caller's cause.
            entry.session.status = SessionStatus::Expired;
            entry.session.ended_at = Some(entry.session.expires_at);
            entry.status.send_replace(SessionStatus::Expired);
        }
        Ok(entry.session.clone())
    }
}

impl std::fmt::Debug for MemorySessionManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemorySessionManager")
            .field("sessions", &self.lock().len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn new_session(duration: Duration) -> NewSession {
        NewSession {
            user: "alice".into(),
            resource: "prod-k8s".into(),
            account: "admin".into(),
            gateway: "gw-1".into(),
            duration,
            reason: Some("incident 42".into()),
        }
    }

    #[tokio::test]
    async fn create_get_end() {
        let m = MemorySessionManager::new();
        let s = m
            .create(new_session(Duration::from_secs(60)))
            .await
            .unwrap();
        assert_eq!(s.status, SessionStatus::Active);
        assert_eq!(m.get(&s.id).await.unwrap(), s);
        let ended = m.end(&s.id, EndCause::User).await.unwrap();
        assert_eq!(ended.status, SessionStatus::Ended);
        assert!(ended.ended_at.is_some());
        // Ending twice keeps the first outcome.
        let again = m.terminate(&s.id).await.unwrap();
        assert_eq!(again.status, SessionStatus::Ended);
    }

    #[tokio::test]
    async fn unknown_and_invalid() {
        let m = MemorySessionManager::new();
        let id = SessionId::new("nope");
        assert!(matches!(m.get(&id).await, Err(SessionError::NotFound(_))));
        assert!(matches!(m.watch(&id).await, Err(SessionError::NotFound(_))));
        assert!(matches!(
            m.create(new_session(Duration::ZERO)).await,
            Err(SessionError::Invalid(_))
        ));
    }

    #[tokio::test]
    async fn watch_sees_termination() {
        let m = std::sync::Arc::new(MemorySessionManager::new());
        let s = m
            .create(new_session(Duration::from_secs(60)))
            .await
            .unwrap();
        let mut w = m.watch(&s.id).await.unwrap();
        assert_eq!(w.current(), SessionStatus::Active);
        let m2 = m.clone();
        let id = s.id.clone();
        tokio::spawn(async move { m2.terminate(&id).await });
        assert_eq!(w.ended().await, SessionStatus::Terminated);
    }

    #[tokio::test]
    async fn expiry_is_seen_by_get_and_watch() {
        let m = MemorySessionManager::new();
        let s = m
            .create(new_session(Duration::from_millis(50)))
            .await
            .unwrap();
        let mut w = m.watch(&s.id).await.unwrap();
        assert_eq!(w.ended().await, SessionStatus::Expired);
        assert_eq!(m.get(&s.id).await.unwrap().status, SessionStatus::Expired);
        let ended = m.end(&s.id, EndCause::User).await.unwrap();
        assert_eq!(ended.status, SessionStatus::Expired);
    }
}
