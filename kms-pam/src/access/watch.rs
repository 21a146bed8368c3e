//! Noticing that a session stopped by itself: expiry (local clock), termination or an end
//! elsewhere (the KMS, polled every second), or the local proxy dying.

use std::time::{Duration, SystemTime};

use super::AccessSession;
use crate::session::{EndCause, SessionStatus};

/// How often the KMS is asked about the session.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Why a session stopped without its user asking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionEnd {
    /// It reached its expiry.
    Expired,
    /// An administrator terminated it.
    Terminated,
    /// The KMS or the gateway ended it after a failure.
    Failed,
    /// It was ended from somewhere else (another client with the user's token).
    EndedElsewhere,
    /// The local proxy stopped; [`AccessSession::close`] reports its error.
    ProxyStopped,
}

impl SessionEnd {
    /// A short phrase for messages: `session expired`.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Expired => "session expired",
            Self::Terminated => "session terminated by an administrator",
            Self::Failed => "session ended by KMS after an error",
            Self::EndedElsewhere => "session ended from elsewhere",
            Self::ProxyStopped => "the local proxy stopped",
        }
    }
}

impl AccessSession {
    /// Waits until the session stops by itself. Expiry is noticed by the local clock even when the
    /// KMS cannot be reached; termination within about a second of the KMS recording it.
    pub async fn wait_ended(&self) -> SessionEnd {
        let remaining = self
            .expires_at()
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        let expiry = tokio::time::sleep(remaining);
        tokio::pin!(expiry);
        let mut warned = false;
        loop {
            tokio::select! {
                () = &mut expiry => return SessionEnd::Expired,
                () = self.proxy_done.cancelled() => return SessionEnd::ProxyStopped,
                polled = self.poll_once() => match polled {
                    Ok(Some(end)) => return end,
                    Ok(None) => warned = false,
                    Err(error) if !warned => {
                        tracing::warn!(%error, "cannot check the session status; will keep trying");
                        warned = true;
                    }
                    Err(_) => {}
                },
            }
        }
    }

    async fn poll_once(&self) -> Result<Option<SessionEnd>, crate::kms::client::KmsError> {
        tokio::time::sleep(POLL_INTERVAL).await;
        let view = self.broker.session_status(self.id()).await?;
        Ok(match view.session.status {
            SessionStatus::Active => None,
            SessionStatus::Expired => Some(SessionEnd::Expired),
            SessionStatus::Ended => Some(SessionEnd::EndedElsewhere),
            SessionStatus::Terminated if view.end_cause == Some(EndCause::Error) => {
                Some(SessionEnd::Failed)
            }
            SessionStatus::Terminated => Some(SessionEnd::Terminated),
        })
    }
}
