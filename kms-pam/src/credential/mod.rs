//! Credentials: where a session's requests go and the token they carry there.

mod memory;
pub mod sealing;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::audit::recording::RecordingPolicy;
use crate::secret::Secret;
use crate::session::Session;
use crate::tls::UpstreamTls;

pub use memory::MemoryCredentialStore;

/// A Kubernetes API server as a PAM resource describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Upstream {
    /// Base URL, e.g. `https://10.0.0.1:6443` or `https://kube.example.com/prefix`.
    pub url: url::Url,
    /// How the server certificate is verified.
    pub tls: UpstreamTls,
}

impl Upstream {
    /// The API server at `url`, its certificate verified as `tls` says.
    pub fn new(url: url::Url, tls: UpstreamTls) -> Self {
        Self { url, tls }
    }
}

/// What the gateway needs to forward one session's requests.
#[derive(Clone, Debug)]
pub struct SessionCredential {
    /// Where to send them.
    pub upstream: Upstream,
    /// The account's service-account token, injected as `Authorization: Bearer`.
    pub token: Secret,
    /// The resource's recording policy: whether streams the gateway cannot record are
    /// refused (the default), and its recording caps.
    pub recording: RecordingPolicy,
}

impl SessionCredential {
    /// A credential for `upstream` with `token`, under the default recording policy (streams
    /// that cannot be recorded are refused).
    pub fn new(upstream: Upstream, token: Secret) -> Self {
        Self {
            upstream,
            token,
            recording: RecordingPolicy::default(),
        }
    }

    /// With the resource's recording policy.
    pub fn with_recording(mut self, recording: RecordingPolicy) -> Self {
        self.recording = recording;
        self
    }
}

/// Errors of a [`CredentialStore`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// The session's resource or account does not exist (any more).
    #[error("no credential for account {resource}/{account}")]
    NotFound {
        /// PAM resource.
        resource: String,
        /// PAM account.
        account: String,
    },
    /// The store refused to hand it out (session not active, not bound to this gateway...).
    #[error("credential refused: {0}")]
    Denied(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The store could not be reached; the caller may retry later.
    #[error("credential store unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl CredentialError {
    /// A [`CredentialError::Denied`] with the store's reason (a message or an error).
    pub fn denied(reason: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Denied(reason.into())
    }

    /// A [`CredentialError::Unavailable`] with the underlying failure (a message or an error).
    pub fn unavailable(reason: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Unavailable(reason.into())
    }
}

/// Hands the gateway the upstream and token of a session's account.
///
/// The token never leaves the gateway: it is injected into forwarded requests and nowhere else.
/// Implementations: [`MemoryCredentialStore`] (standalone gateways, tests) and a KMS-backed one that
/// fetches over the gateway's mTLS identity. Callers cache the answer for at most the session's life.
///
/// Failure semantics: `NotFound`/`Denied` are final for this session; `Unavailable` is transient and
/// the gateway answers the request with 502 without forwarding it.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait CredentialStore: Send + Sync + 'static {
    /// The credential for `session`'s account.
    async fn credential(&self, session: &Session) -> Result<SessionCredential, CredentialError>;
}
