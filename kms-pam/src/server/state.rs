//! What every handler shares.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

use super::changes::ChangeFeed;
use crate::audit::signing::SigningKey;
use crate::server::store::{ProjectRecord, Store};
use crate::tls::CertificateAuthority;

/// Shared server state: cheap to clone (everything behind `Arc`s).
#[derive(Clone)]
pub(crate) struct AppState {
    /// The store.
    pub(crate) store: Arc<dyn Store>,
    /// The KMS CA.
    pub(crate) ca: Arc<CertificateAuthority>,
    /// The project every request works in until project management lands (`default`).
    pub(crate) project: Arc<ProjectRecord>,
    /// Wakes long-polling gateways when the change log grows.
    pub(crate) feed: ChangeFeed,
    /// Cancelled when the server shuts down, so long polls and the expiry task stop at once.
    pub(crate) shutdown: CancellationToken,
    /// KMS's audit key: signs session heads. Read from its file, never from the database.
    pub(crate) audit_key: Arc<SigningKey>,
}

impl AppState {
    /// The project id requests work in.
    pub(crate) fn project_id(&self) -> &str {
        &self.project.id
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
