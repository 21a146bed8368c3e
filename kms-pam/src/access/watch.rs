//! Noticing that a session stopped by itself: expiry (local clock), termination or an end
//! elsewhere (the KMS, polled every second), or the local proxy dying.
//!
//! The poll is also the session's heartbeat: KMS ends a session nobody has asked about for 30 s
//! as abandoned, so a killed CLI does not leave it open.

use std::time::{Duration, SystemTime};

use super::AccessSession;
use crate::kms::api::{ErrorCode, SessionView};
use crate::kms::client::KmsError;
use crate::session::{EndCause, SessionStatus};

/// How often the KMS is asked about the session.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// How long, at expiry, the KMS is asked why the session ended, and how often.
const AT_EXPIRY_WAIT: Duration = Duration::from_millis(1500);
const AT_EXPIRY_POLL: Duration = Duration::from_millis(250);

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
    /// KMS ended it because this client stopped asking about it for too long (the process was
    /// stopped, the machine slept, the network went away).
    Abandoned,
    /// Access was taken away: the user was disabled or removed from the project, the grant or
    /// the gateway was revoked, the resource or account deleted. The cause says which.
    Revoked(EndCause),
    /// KMS no longer accepts the user's API token (the user was disabled or deleted, or the
    /// token rotated); KMS ended the session.
    TokenRefused,
}

impl SessionEnd {
    /// How a session KMS reports as `view` ended, if it has.
    pub fn of(view: &SessionView) -> Option<Self> {
        Some(match (view.session.status, view.end_cause) {
            (SessionStatus::Active, _) => return None,
            (SessionStatus::Expired, _) => Self::Expired,
            (SessionStatus::Ended, Some(EndCause::Abandoned)) => Self::Abandoned,
            (SessionStatus::Ended, _) => Self::EndedElsewhere,
            (SessionStatus::Terminated, Some(EndCause::Error)) => Self::Failed,
            (SessionStatus::Terminated, None | Some(EndCause::Termination | EndCause::Unknown)) => {
                Self::Terminated
            }
            (SessionStatus::Terminated, Some(cause)) => Self::Revoked(cause),
        })
    }

    /// A short phrase for messages: `session expired`.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Expired => "session expired",
            Self::Terminated => "session terminated by an administrator",
            Self::Failed => "session ended by KMS after an error",
            Self::EndedElsewhere => "session ended from elsewhere",
            Self::ProxyStopped => "the local proxy stopped",
            Self::Abandoned => {
                "session ended by KMS as abandoned: this client did not check in with KMS for \
                 too long"
            }
            Self::Revoked(cause) => match cause {
                EndCause::UserDisabled => "session terminated: your user was disabled",
                EndCause::UserDeleted => "session terminated: your user was deleted",
                EndCause::TokenRevoked => "session terminated: your API token was revoked",
                EndCause::MembershipRemoved => {
                    "session terminated: you were removed from the project"
                }
                EndCause::RoleChanged => {
                    "session terminated: your role in the project no longer allows it"
                }
                EndCause::GrantDeleted => {
                    "session terminated: the grant it was opened under was deleted"
                }
                EndCause::GrantExpired => {
                    "session terminated: the grant it was opened under expired"
                }
                EndCause::GrantRevoked => {
                    "session terminated: the grant it was opened under was revoked"
                }
                EndCause::GatewayRevoked => "session terminated: its gateway was revoked",
                EndCause::ResourceDeleted => "session terminated: its resource was deleted",
                EndCause::AccountDeleted => "session terminated: its account was deleted",
                _ => "session terminated: access was revoked",
            },
            Self::TokenRefused => {
                "session ended: KMS no longer accepts your API token (your user was disabled or \
                 deleted, or the token was rotated)"
            }
        }
    }

    /// Whether the session ended normally as far as its user is concerned (expired, or ended
    /// by them elsewhere): anything else is a failure to report.
    pub fn is_normal(self) -> bool {
        matches!(self, Self::Expired | Self::EndedElsewhere)
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
                () = &mut expiry => return self.end_at_expiry().await,
                () = self.proxy_done.cancelled() => return SessionEnd::ProxyStopped,
                polled = self.poll_once() => match polled {
                    Ok(Some(end)) => return end,
                    Ok(None) => warned = false,
                    Err(error) if error.code() == Some(ErrorCode::Unauthenticated) => {
                        return SessionEnd::TokenRefused;
                    }
                    Err(error) if !warned => {
                        tracing::warn!(%error, "cannot check the session status; will keep trying");
                        warned = true;
                    }
                    Err(_) => {}
                },
            }
        }
    }

    /// At the session's expiry, what KMS recorded: a session opened under a grant expires with
    /// it, and KMS records that the grant expired (within a second: its reaper's period). Asked
    /// for at most `AT_EXPIRY_WAIT`; plain expiry if KMS says nothing else or cannot be reached.
    async fn end_at_expiry(&self) -> SessionEnd {
        let recorded = async {
            loop {
                tokio::time::sleep(AT_EXPIRY_POLL).await;
                // Until KMS records the end, it shows the session as plainly expired.
                if let Ok(view) = self.broker.session_status(self.id()).await {
                    match SessionEnd::of(&view) {
                        Some(SessionEnd::Expired) | None => {}
                        Some(end) => return end,
                    }
                }
            }
        };
        tokio::time::timeout(AT_EXPIRY_WAIT, recorded)
            .await
            .unwrap_or(SessionEnd::Expired)
    }

    async fn poll_once(&self) -> Result<Option<SessionEnd>, KmsError> {
        tokio::time::sleep(POLL_INTERVAL).await;
        let view = self.broker.session_status(self.id()).await?;
        Ok(SessionEnd::of(&view))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{Session, SessionId};

    fn view(status: SessionStatus, cause: Option<EndCause>) -> SessionView {
        let now = SystemTime::now();
        SessionView {
            session: Session {
                id: SessionId::new("s"),
                user: "alice".into(),
                resource: "prod".into(),
                account: "admin".into(),
                gateway: "gw".into(),
                status,
                created_at: now,
                expires_at: now,
                ended_at: None,
                reason: None,
                binding: None,
            },
            end_cause: cause,
            identity: None,
        }
    }

    #[test]
    fn every_end_reads_as_what_happened() {
        use EndCause as C;
        use SessionStatus as S;
        let cases = [
            (S::Active, None, None),
            (S::Expired, Some(C::Expiry), Some(SessionEnd::Expired)),
            (S::Ended, Some(C::User), Some(SessionEnd::EndedElsewhere)),
            (S::Ended, Some(C::Abandoned), Some(SessionEnd::Abandoned)),
            (
                S::Terminated,
                Some(C::Termination),
                Some(SessionEnd::Terminated),
            ),
            (S::Terminated, Some(C::Error), Some(SessionEnd::Failed)),
            (S::Terminated, None, Some(SessionEnd::Terminated)),
            (
                S::Terminated,
                Some(C::GrantDeleted),
                Some(SessionEnd::Revoked(C::GrantDeleted)),
            ),
        ];
        for (status, cause, expected) in cases {
            assert_eq!(
                SessionEnd::of(&view(status, cause)),
                expected,
                "{status} {cause:?}"
            );
        }
        for (cause, says) in [
            (C::GrantExpired, "grant it was opened under expired"),
            (C::GrantRevoked, "grant it was opened under was revoked"),
        ] {
            assert!(
                SessionEnd::Revoked(cause).describe().contains(says),
                "{cause}"
            );
        }
        assert!(SessionEnd::Revoked(C::GatewayRevoked)
            .describe()
            .contains("gateway was revoked"));
        assert!(!SessionEnd::Abandoned.is_normal());
        assert!(SessionEnd::Expired.is_normal());
    }
}
