//! The session deadline: no request passes after a session stops, and open streams are cut.

use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use tokio_util::sync::CancellationToken;

use super::error::ProxyError;
use super::stream::SessionCut;
use crate::kube::Status;
use crate::session::{SessionId, SessionStatus};

/// A session's end, as the proxy enforces it. Whoever learns that the session stopped (the
/// gateway's session watcher, at expiry or on termination) calls [`SessionDeadline::end`]; every
/// request checks it, and every open stream holds a [`SessionCut`] from it.
#[derive(Debug)]
pub(crate) struct SessionDeadline {
    session_id: SessionId,
    expires_at: SystemTime,
    ended: OnceLock<SessionStatus>,
    cut: CancellationToken,
}

impl SessionDeadline {
    /// A deadline for a session that is active now and expires at `expires_at`.
    pub(crate) fn new(session_id: SessionId, expires_at: SystemTime) -> Arc<Self> {
        Arc::new(Self {
            session_id,
            expires_at,
            ended: OnceLock::new(),
            cut: CancellationToken::new(),
        })
    }

    /// Marks the session stopped with `status` and cuts its streams. Later calls change nothing.
    pub(crate) fn end(&self, status: SessionStatus) {
        let _ = self.ended.set(status);
        self.cut.cancel();
    }

    /// The status if the session has stopped (also when past expiry before anyone called `end`).
    pub(crate) fn stopped(&self) -> Option<SessionStatus> {
        self.ended
            .get()
            .copied()
            .or_else(|| (SystemTime::now() >= self.expires_at).then_some(SessionStatus::Expired))
    }

    /// Refuses a request of a stopped session.
    pub(crate) fn check(&self) -> Result<(), ProxyError> {
        match self.stopped() {
            None => Ok(()),
            Some(status) => Err(ProxyError::session(self.message(status))),
        }
    }

    /// Resolves when the session is cut, with the `Status` to report.
    pub(crate) fn cut(self: &Arc<Self>) -> SessionCut {
        let me = Arc::clone(self);
        Box::pin(async move {
            me.cut.cancelled().await;
            let status = me.stopped().unwrap_or(SessionStatus::Terminated);
            Status::failure(401, "Unauthorized", me.message(status))
        })
    }

    /// A token cancelled when the session is cut.
    pub(crate) fn token(&self) -> &CancellationToken {
        &self.cut
    }

    /// What the user reads when a stopped session refuses them.
    pub(crate) fn message(&self, status: SessionStatus) -> String {
        stopped_message(&self.session_id, status, self.expires_at)
    }
}

/// What the user reads when a session that stopped with `status` refuses them.
pub(crate) fn stopped_message(
    id: &SessionId,
    status: SessionStatus,
    expires_at: SystemTime,
) -> String {
    match status {
        SessionStatus::Expired => format!(
            "kms-pam session {id} expired at {}; start a new one with `kms-pam pam access`",
            crate::time::format_rfc3339(expires_at)
        ),
        SessionStatus::Terminated => {
            format!("kms-pam session {id} was terminated by an administrator")
        }
        SessionStatus::Ended => {
            format!("kms-pam session {id} has ended; start a new one with `kms-pam pam access`")
        }
        SessionStatus::Active => format!("kms-pam session {id} is active"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn end_refuses_requests_and_cuts_streams() {
        let d = SessionDeadline::new(
            SessionId::new("s1"),
            SystemTime::now() + Duration::from_secs(60),
        );
        assert!(d.check().is_ok());
        let cut = d.cut();
        d.end(SessionStatus::Terminated);
        d.end(SessionStatus::Ended);
        let status = cut.await;
        assert_eq!(status.code, 401);
        assert!(status.message.contains("terminated"), "{}", status.message);
        let err = d.check().unwrap_err();
        assert!(err.message().contains("s1 was terminated"));
    }

    #[test]
    fn past_expiry_is_stopped_without_anyone_calling_end() {
        let d = SessionDeadline::new(SessionId::new("s2"), SystemTime::now());
        assert_eq!(d.stopped(), Some(SessionStatus::Expired));
        assert!(d.check().unwrap_err().message().contains("expired"));
    }
}
