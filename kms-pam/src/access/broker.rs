//! The control plane as `open_session` needs it: the [`SessionBroker`] trait, and its
//! implementation by [`KmsClient`].

use async_trait::async_trait;

use crate::kms::api::{CreateSession, CreatedSession, SessionView};
use crate::kms::client::{KmsClient, KmsError};
use crate::session::SessionId;

/// Grants, ends and reports sessions for [`super::open_session`]. [`KmsClient`] is the KMS's;
/// an embedder with a control plane of their own implements these three calls and gets the same
/// local proxy, tunnel and kubeconfig.
///
/// Failure semantics: [`KmsError::Api`] is the control plane's considered answer (refused,
/// unknown session, not active) and is final; [`KmsError::Unreachable`] may be retried. The
/// session's private key never reaches the broker: `create_session` carries a CSR only.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait SessionBroker: Send + Sync + 'static {
    /// Grants a session and signs its CSR; the answer names the gateway to dial and its CA.
    async fn create_session(&self, request: &CreateSession) -> Result<CreatedSession, KmsError>;

    /// Ends an active session at its user's request.
    async fn end_session(&self, id: &SessionId) -> Result<SessionView, KmsError>;

    /// The session as the control plane sees it now (polled about once a second while open).
    async fn session_status(&self, id: &SessionId) -> Result<SessionView, KmsError>;

    /// Whether the control plane holds the ended session's complete record: the gateway has
    /// delivered its events up to its signed end (KMS then signs the session's head).
    /// [`AccessSession::close`](super::AccessSession::close) asks this for a few seconds after
    /// ending a session that used the tunnel, so that the history read right after is
    /// complete. The default says yes at once (a control plane that keeps no record).
    async fn record_complete(&self, id: &SessionId) -> Result<bool, KmsError> {
        let _ = id;
        Ok(true)
    }
}

/// A shared broker is a broker: `open_session` clones it into the session's status poller, so
/// an embedder's broker with state of its own goes in an `Arc`.
#[async_trait]
impl<T: SessionBroker + ?Sized> SessionBroker for std::sync::Arc<T> {
    async fn create_session(&self, request: &CreateSession) -> Result<CreatedSession, KmsError> {
        (**self).create_session(request).await
    }

    async fn end_session(&self, id: &SessionId) -> Result<SessionView, KmsError> {
        (**self).end_session(id).await
    }

    async fn session_status(&self, id: &SessionId) -> Result<SessionView, KmsError> {
        (**self).session_status(id).await
    }

    async fn record_complete(&self, id: &SessionId) -> Result<bool, KmsError> {
        (**self).record_complete(id).await
    }
}

#[async_trait]
impl SessionBroker for KmsClient {
    async fn create_session(&self, request: &CreateSession) -> Result<CreatedSession, KmsError> {
        self.sessions().create(request).await
    }

    async fn end_session(&self, id: &SessionId) -> Result<SessionView, KmsError> {
        self.sessions().end(id).await
    }

    async fn session_status(&self, id: &SessionId) -> Result<SessionView, KmsError> {
        Ok(self.sessions().get(id).await?.session)
    }

    async fn record_complete(&self, id: &SessionId) -> Result<bool, KmsError> {
        // A KMS that does not report its progress keeps no signed record to wait for.
        let detail = self.sessions().get(id).await?;
        Ok(detail.audit.is_none_or(|audit| audit.sealed))
    }
}
