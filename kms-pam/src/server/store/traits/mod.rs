//! The storage traits, one per entity, in a file per area (the organisation, a project's PAM
//! entities, sessions and their events, the console, the audit record). Every method is one
//! short transaction; the failure semantics of [`StoreError`] apply to all of them.

mod audit;
mod console;
mod org;
mod pam;
mod sessions;
mod sso;

pub(crate) use self::audit::AuditStore;
pub(crate) use self::console::ConsoleStore;
pub(crate) use self::org::{GatewayStore, ProjectStore, UserStore};
pub(crate) use self::pam::{AccountStore, GrantStore, ResourceStore};
pub(crate) use self::sessions::{EventStore, LinkEvents, SessionStore};
pub(crate) use self::sso::{SsoCredentialStore, SsoStore};

use std::time::SystemTime;

use async_trait::async_trait;

use super::error::StoreError;
use super::records::ProjectRecord;
use crate::tls::PrivateKeyPem;

/// The KMS certificate authority as stored: certificate in clear, key sealed.
#[derive(Debug, Clone)]
pub(crate) struct StoredCa {
    /// CA certificate (PEM).
    pub cert_pem: String,
    /// CA private key (PEM), already unsealed.
    pub key: PrivateKeyPem,
}

/// Everything the KMS keeps. Implemented for every type that implements all entity traits.
pub(crate) trait Store:
    SetupStore
    + ProjectStore
    + UserStore
    + GatewayStore
    + ResourceStore
    + AccountStore
    + GrantStore
    + SessionStore
    + EventStore
    + ConsoleStore
    + AuditStore
    + SsoStore
    + SsoCredentialStore
{
}

impl<T> Store for T where
    T: SetupStore
        + ProjectStore
        + UserStore
        + GatewayStore
        + ResourceStore
        + AccountStore
        + GrantStore
        + SessionStore
        + EventStore
        + ConsoleStore
        + AuditStore
        + SsoStore
        + SsoCredentialStore
{
}

/// What the first start creates: projects and the CA.
#[async_trait]
pub(crate) trait SetupStore: Send + Sync + 'static {
    /// The project named `name`, created if absent.
    async fn ensure_project(
        &self,
        name: &str,
        now: SystemTime,
    ) -> Result<ProjectRecord, StoreError>;

    /// The stored CA, if one was saved.
    async fn ca(&self) -> Result<Option<StoredCa>, StoreError>;

    /// Saves the CA (key sealed). `Conflict` if one is already stored (another replica won).
    async fn save_ca(&self, ca: &StoredCa) -> Result<(), StoreError>;

    /// Closes connections, waiting for pending writes (called once, when the server stops).
    async fn close(&self);
}
