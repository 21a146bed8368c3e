//! Sessions: the unit of just-in-time access, and the [`SessionManager`] trait that owns their life.

mod binding;
mod memory;
mod person;

use std::fmt;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

pub use binding::SessionBinding;
pub use memory::MemorySessionManager;
pub use person::PersonIdentity;

/// A session's identifier (a UUID in text form, as KMS issues it).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(String);

impl SessionId {
    /// A fresh random identifier.
    pub fn new_random() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    /// Wraps an identifier received from elsewhere (a certificate, a URL, the database).
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The identifier as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a session is in its life. Only `Active` lets requests through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionStatus {
    /// Usable until `expires_at`.
    Active,
    /// Ended by its user (Ctrl+C, the command exited).
    Ended,
    /// Reached `expires_at`.
    Expired,
    /// Ended by an administrator, or by the system after an error.
    Terminated,
}

impl SessionStatus {
    /// The lowercase name used in JSON and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Ended => "ended",
            Self::Expired => "expired",
            Self::Terminated => "terminated",
        }
    }
}

impl fmt::Display for SessionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a session ended. Serialized snake_case (`user`, `grant_deleted`); a cause this version
/// does not know (from a newer KMS) reads as [`EndCause::Unknown`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EndCause {
    /// Its user ended it.
    User,
    /// It reached its expiry.
    Expiry,
    /// An administrator terminated it.
    Termination,
    /// The CLI or gateway failed and ended it.
    Error,
    /// Its CLI stopped polling KMS (killed, asleep, cut off) for longer than KMS waits.
    Abandoned,
    /// Its user was disabled.
    UserDisabled,
    /// Its user was deleted.
    UserDeleted,
    /// Its user's API token was rotated (the old one revoked).
    TokenRevoked,
    /// Its user was removed from the session's project.
    MembershipRemoved,
    /// Its user's role in the project changed to one that could not have opened it.
    RoleChanged,
    /// The grant it was opened under was deleted.
    GrantDeleted,
    /// The grant it was opened under expired.
    GrantExpired,
    /// The grant it was opened under was revoked.
    GrantRevoked,
    /// The gateway serving it was revoked.
    GatewayRevoked,
    /// Its resource was deleted.
    ResourceDeleted,
    /// Its account was deleted.
    AccountDeleted,
    /// A cause this version does not know (from a newer KMS).
    #[serde(other)]
    Unknown,
}

impl EndCause {
    /// Every cause this version knows, `Unknown` aside.
    pub const ALL: [Self; 16] = [
        Self::User,
        Self::Expiry,
        Self::Termination,
        Self::Error,
        Self::Abandoned,
        Self::UserDisabled,
        Self::UserDeleted,
        Self::TokenRevoked,
        Self::MembershipRemoved,
        Self::RoleChanged,
        Self::GrantDeleted,
        Self::GrantExpired,
        Self::GrantRevoked,
        Self::GatewayRevoked,
        Self::ResourceDeleted,
        Self::AccountDeleted,
    ];

    /// The status a session ended for this cause has: `ended` when its user or its user's
    /// client let it go, `expired` at expiry, `terminated` when it was taken away.
    pub fn status(self) -> SessionStatus {
        match self {
            Self::User | Self::Abandoned => SessionStatus::Ended,
            Self::Expiry => SessionStatus::Expired,
            _ => SessionStatus::Terminated,
        }
    }

    /// The cause as it appears on the wire and in the store (`grant_deleted`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Expiry => "expiry",
            Self::Termination => "termination",
            Self::Error => "error",
            Self::Abandoned => "abandoned",
            Self::UserDisabled => "user_disabled",
            Self::UserDeleted => "user_deleted",
            Self::TokenRevoked => "token_revoked",
            Self::MembershipRemoved => "membership_removed",
            Self::RoleChanged => "role_changed",
            Self::GrantDeleted => "grant_deleted",
            Self::GrantExpired => "grant_expired",
            Self::GrantRevoked => "grant_revoked",
            Self::GatewayRevoked => "gateway_revoked",
            Self::ResourceDeleted => "resource_deleted",
            Self::AccountDeleted => "account_deleted",
            Self::Unknown => "unknown",
        }
    }

    /// The cause named `name` (as [`Self::as_str`] writes it), if this version knows it.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|cause| cause.as_str() == name)
    }

    /// Why the session ended, as a phrase for people: `the grant it was opened under was
    /// deleted`.
    pub fn describe(self) -> &'static str {
        match self {
            Self::User => "its user ended it",
            Self::Expiry => "it expired",
            Self::Termination => "an administrator terminated it",
            Self::Error => "KMS or the gateway ended it after an error",
            Self::Abandoned => "its client stopped checking in with KMS for too long (abandoned)",
            Self::UserDisabled => "its user was disabled",
            Self::UserDeleted => "its user was deleted",
            Self::TokenRevoked => "its user's API token was revoked",
            Self::MembershipRemoved => "its user was removed from the project",
            Self::RoleChanged => "its user's role in the project no longer allows it",
            Self::GrantDeleted => "the grant it was opened under was deleted",
            Self::GrantExpired => "the grant it was opened under expired",
            Self::GrantRevoked => "the grant it was opened under was revoked",
            Self::GatewayRevoked => "its gateway was revoked",
            Self::ResourceDeleted => "its resource was deleted",
            Self::AccountDeleted => "its account was deleted",
            Self::Unknown => "KMS ended it for a reason this version does not know",
        }
    }
}

impl fmt::Display for EndCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A session as KMS records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Identifier, also carried in the session's client certificate.
    pub id: SessionId,
    /// The user it was granted to.
    pub user: String,
    /// The PAM resource (cluster).
    pub resource: String,
    /// The PAM account on that resource.
    pub account: String,
    /// The gateway the session is bound to; other gateways refuse it.
    pub gateway: String,
    /// Current status.
    pub status: SessionStatus,
    /// Creation time.
    #[serde(with = "crate::time::rfc3339")]
    pub created_at: SystemTime,
    /// The session stops working at this instant.
    #[serde(with = "crate::time::rfc3339")]
    pub expires_at: SystemTime,
    /// When it ended, if it has.
    #[serde(with = "crate::time::rfc3339_option", default)]
    pub ended_at: Option<SystemTime>,
    /// The reason its user gave.
    #[serde(default)]
    pub reason: Option<String>,
    /// Who asked for it, from where, in which project: what KMS tells the gateway the session
    /// is bound to, which the gateway signs into the session's record (`None` in the views
    /// users read, and where no KMS keeps projects).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding: Option<SessionBinding>,
}

impl Session {
    /// The status at `now`: an `Active` session past its expiry is `Expired`.
    pub fn status_at(&self, now: SystemTime) -> SessionStatus {
        if self.status == SessionStatus::Active && now >= self.expires_at {
            SessionStatus::Expired
        } else {
            self.status
        }
    }

    /// Time left before expiry (zero when past).
    pub fn remaining(&self, now: SystemTime) -> Duration {
        self.expires_at.duration_since(now).unwrap_or_default()
    }
}

/// The project that always exists, where the routes without a `/v1/projects/{project}` prefix
/// work.
pub const DEFAULT_PROJECT: &str = "default";

/// A session as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionView {
    /// The session.
    #[serde(flatten)]
    pub session: Session,
    /// Why it ended.
    #[serde(default)]
    pub end_cause: Option<EndCause>,
    /// Who its user is at the OpenID provider they signed in with, when they opened it after
    /// single sign-on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<PersonIdentity>,
}

/// What is needed to open a session.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewSession {
    /// Requesting user.
    pub user: String,
    /// PAM resource.
    pub resource: String,
    /// PAM account.
    pub account: String,
    /// Gateway that will serve it.
    pub gateway: String,
    /// Requested lifetime.
    pub duration: Duration,
    /// Free-text reason.
    pub reason: Option<String>,
}

impl NewSession {
    /// A session of `user` on `resource`/`account` through `gateway`, for `duration`, with no
    /// reason given.
    pub fn new(
        user: impl Into<String>,
        resource: impl Into<String>,
        account: impl Into<String>,
        gateway: impl Into<String>,
        duration: Duration,
    ) -> Self {
        Self {
            user: user.into(),
            resource: resource.into(),
            account: account.into(),
            gateway: gateway.into(),
            duration,
            reason: None,
        }
    }

    /// The reason the user gave.
    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }
}

/// Errors of a [`SessionManager`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// No session has that id (or the caller may not see it).
    #[error("session {0} not found")]
    NotFound(SessionId),
    /// The session exists but no longer allows access.
    #[error("session {id} is {status}")]
    NotActive {
        /// The session.
        id: SessionId,
        /// Its status.
        status: SessionStatus,
    },
    /// The request itself is wrong (zero duration, unknown account...).
    #[error("invalid session request: {0}")]
    Invalid(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The backing store or control plane could not answer; the caller may retry.
    #[error("session service unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl SessionError {
    /// A [`SessionError::Invalid`] with what is wrong (a message or an error).
    pub fn invalid(reason: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Invalid(reason.into())
    }

    /// A [`SessionError::Unavailable`] with the underlying failure (a message or an error).
    pub fn unavailable(reason: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Unavailable(reason.into())
    }
}

/// The read side of sessions, as a gateway needs it: look one up, and learn when it stops.
///
/// Creating and ending sessions is the control plane's business (KMS's API, or
/// [`MemorySessionManager`]'s own methods); a gateway only asks. Implementations:
/// [`MemorySessionManager`] (tests, standalone gateways) and the KMS-backed
/// [`crate::gateway::kms::KmsSessionManager`]. Both methods are cheap to call concurrently.
///
/// Failure semantics: `NotFound` and `NotActive` are final answers about the session; `Unavailable`
/// means the answer is unknown, and callers that guard access (the gateway) must then refuse access.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait SessionManager: Send + Sync + 'static {
    /// The session as it is now (an active session past its expiry reports `Expired`).
    async fn get(&self, id: &SessionId) -> Result<Session, SessionError>;

    /// A handle that resolves when the session stops being active, whatever the reason.
    async fn watch(&self, id: &SessionId) -> Result<SessionWatch, SessionError>;

    /// How the session ended as the control plane holds it (status, end time, cause), which
    /// the gateway signs into the session's record. The default asks [`get`](Self::get) and
    /// knows no cause.
    async fn ending(&self, id: &SessionId) -> Result<SessionEnding, SessionError> {
        let session = self.get(id).await?;
        Ok(SessionEnding {
            status: session.status,
            ended_at: session.ended_at,
            end_cause: None,
        })
    }
}

/// A session's end as the control plane holds it ([`SessionManager::ending`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionEnding {
    /// Its status (`Active` when it has not ended there).
    pub status: SessionStatus,
    /// When it ended.
    pub ended_at: Option<SystemTime>,
    /// Why, as KMS names the cause (`user`, `expiry`, …), when known.
    pub end_cause: Option<String>,
}

impl SessionEnding {
    /// An end as the control plane holds it.
    pub fn new(
        status: SessionStatus,
        ended_at: Option<SystemTime>,
        end_cause: Option<String>,
    ) -> Self {
        Self {
            status,
            ended_at,
            end_cause,
        }
    }
}

/// Tells its holder when a session stops being active: ended, terminated, or expired.
#[derive(Clone, Debug)]
pub struct SessionWatch {
    status: watch::Receiver<SessionStatus>,
    expires_at: SystemTime,
}

impl SessionWatch {
    /// Builds a watch from a status channel and the session's expiry.
    pub fn new(status: watch::Receiver<SessionStatus>, expires_at: SystemTime) -> Self {
        Self { status, expires_at }
    }

    /// The session's expiry.
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }

    /// The status now.
    pub fn current(&self) -> SessionStatus {
        let status = *self.status.borrow();
        if status == SessionStatus::Active && SystemTime::now() >= self.expires_at {
            SessionStatus::Expired
        } else {
            status
        }
    }

    /// Waits until the session is no longer active and returns why. If the status channel closes
    /// (the manager went away), the session counts as terminated: access must fail closed.
    pub async fn ended(&mut self) -> SessionStatus {
        let left = self
            .expires_at
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        tokio::select! {
            changed = self.status.wait_for(|s| *s != SessionStatus::Active) => match changed {
                Ok(status) => *status,
                Err(_) => SessionStatus::Terminated,
            },
            () = tokio::time::sleep(left) => SessionStatus::Expired,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_causes_are_snake_case_and_old_values_still_read() {
        for cause in EndCause::ALL {
            let json = serde_json::to_string(&cause).unwrap();
            assert_eq!(json, format!("\"{}\"", cause.as_str()));
            assert_eq!(serde_json::from_str::<EndCause>(&json).unwrap(), cause);
            assert_eq!(EndCause::from_name(cause.as_str()), Some(cause));
        }
        for (old, cause) in [
            ("user", EndCause::User),
            ("expiry", EndCause::Expiry),
            ("termination", EndCause::Termination),
            ("error", EndCause::Error),
        ] {
            assert_eq!(EndCause::from_name(old), Some(cause));
        }
        let newer: EndCause = serde_json::from_str("\"moon_phase\"").unwrap();
        assert_eq!(newer, EndCause::Unknown);
        assert_eq!(EndCause::from_name("moon_phase"), None);
        assert_eq!(EndCause::Abandoned.status(), SessionStatus::Ended);
        assert_eq!(EndCause::GrantDeleted.status(), SessionStatus::Terminated);
    }
}
