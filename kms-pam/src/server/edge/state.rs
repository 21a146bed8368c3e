//! What every handler shares: the store and the components beside it. It imports its
//! components (`feed.rs`, `metrics.rs`, `failure_budget.rs`); none of them imports it.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

use super::failure_budget::FailureBudget;
use super::feed::ChangeFeed;
use super::metrics::KmsMetrics;
use crate::audit::evidence::signing::SigningKey;
use crate::server::store::{ProjectRecord, Store};
use crate::tls::CertificateAuthority;

/// Shared server state: cheap to clone (everything behind `Arc`s).
#[derive(Clone)]
pub(crate) struct AppState {
    /// The store.
    pub(crate) store: Arc<dyn Store>,
    /// The KMS CA.
    pub(crate) ca: Arc<CertificateAuthority>,
    /// The project `default`, where the routes without a project prefix work (it cannot be
    /// deleted, so it is looked up once).
    pub(crate) default_project: Arc<ProjectRecord>,
    /// Wakes long-polling gateways when the change log grows.
    pub(crate) feed: ChangeFeed,
    /// Cancelled when the server shuts down, so long polls and the reaper stop at once.
    pub(crate) shutdown: CancellationToken,
    /// How long a session's client may stay silent before the session counts as abandoned.
    pub(crate) abandon_after: Duration,
    /// The `/metrics` counters.
    pub(crate) metrics: Arc<KmsMetrics>,
    /// The per-source budget of failed authentications.
    pub(crate) failures: Arc<FailureBudget>,
    /// KMS's audit key: signs session heads. Read from its file, never from the database.
    pub(crate) audit_key: Arc<SigningKey>,
    /// Whether KMS serves HTTPS itself (the console then hands out `https://` commands).
    pub(crate) https: bool,
    /// The OpenID providers' discovery documents and keys, and the client that fetches them.
    pub(crate) sso: Arc<crate::server::sso::provider::Providers>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("default_project", &self.default_project.name)
            .field("abandon_after", &self.abandon_after)
            .finish_non_exhaustive()
    }
}

/// Now, truncated to whole seconds: the precision the store keeps and X.509 validity has, so a
/// session's recorded expiry and its certificate's `notAfter` are the same instant.
pub(crate) fn now() -> SystemTime {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    UNIX_EPOCH + Duration::from_secs(secs)
}
