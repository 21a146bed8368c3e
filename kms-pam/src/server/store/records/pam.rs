//! A project's PAM rows: resources, accounts, grants.

use std::time::SystemTime;

use crate::kms::api::GrantStatus;
use crate::secret::Secret;

/// A PAM resource (a Kubernetes cluster).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ResourceRecord {
    /// Identifier.
    pub id: String,
    /// Owning project.
    pub project_id: String,
    /// Name, unique in the project.
    pub name: String,
    /// `kubernetes`.
    pub kind: String,
    /// API server URL.
    pub url: String,
    /// Gateway id.
    pub gateway_id: String,
    /// Gateway name.
    pub gateway: String,
    /// Verify the API server certificate.
    pub ssl_verify: bool,
    /// CA bundle (PEM).
    pub ca_cert: Option<String>,
    /// Creation time.
    pub created_at: SystemTime,
}

/// What is needed to create a resource.
#[derive(Clone, Debug)]
pub(crate) struct NewResource {
    /// Owning project.
    pub project_id: String,
    /// Name, unique in the project.
    pub name: String,
    /// `kubernetes`.
    pub kind: String,
    /// API server URL.
    pub url: String,
    /// Gateway id.
    pub gateway_id: String,
    /// Verify the API server certificate.
    pub ssl_verify: bool,
    /// CA bundle (PEM).
    pub ca_cert: Option<String>,
    /// Creation time.
    pub now: SystemTime,
}

/// A resource's new settings, each replacing the stored one (`ResourceStore::update_resource`);
/// its name, kind, project and creation time stay.
#[derive(Clone, Debug)]
pub(crate) struct ResourceChange {
    /// The resource's id.
    pub id: String,
    /// API server URL.
    pub url: String,
    /// Gateway id.
    pub gateway_id: String,
    /// Verify the API server certificate.
    pub ssl_verify: bool,
    /// CA bundle (PEM); `None`: the system roots.
    pub ca_cert: Option<String>,
}

/// A PAM account. Its token is kept sealed and read only through
/// `AccountStore::account_token`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AccountRecord {
    /// Identifier.
    pub id: String,
    /// Owning project.
    pub project_id: String,
    /// Resource id.
    pub resource_id: String,
    /// Resource name.
    pub resource: String,
    /// Name, unique on the resource.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Longest session allowed.
    pub max_duration_secs: u64,
    /// Creation time.
    pub created_at: SystemTime,
}

/// A change to an account: its description and longest session are replaced; its token only when
/// one is given (`None` keeps the sealed token as it is).
#[derive(Clone, Debug)]
pub(crate) struct AccountChange {
    /// The account's id.
    pub id: String,
    /// New description (`None` clears it).
    pub description: Option<String>,
    /// New longest session.
    pub max_duration_secs: u64,
    /// A new service-account token, sealed by the store before it is written.
    pub token: Option<Secret>,
}

/// What is needed to create an account.
#[derive(Clone, Debug)]
pub(crate) struct NewAccount {
    /// Owning project.
    pub project_id: String,
    /// Resource id.
    pub resource_id: String,
    /// Name, unique on the resource.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Longest session allowed.
    pub max_duration_secs: u64,
    /// The service-account token, sealed by the store before it is written.
    pub token: Secret,
    /// Creation time.
    pub now: SystemTime,
}

/// A grant: a user may open sessions for an account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct GrantRecord {
    /// Identifier.
    pub id: String,
    /// Owning project.
    pub project_id: String,
    /// Account id.
    pub account_id: String,
    /// Account name.
    pub account: String,
    /// Resource name.
    pub resource: String,
    /// User id.
    pub user_id: String,
    /// User name.
    pub user: String,
    /// Longest session the grant allows.
    pub max_duration_secs: u64,
    /// Creation time.
    pub created_at: SystemTime,
    /// When it stops allowing sessions (never if `None`).
    pub expires_at: Option<SystemTime>,
    /// When it was revoked, by whom and why.
    pub revoked: Option<GrantRevocation>,
}

impl GrantRecord {
    /// Active, expired (at `now`) or revoked; revocation wins over expiry.
    pub(crate) fn status(&self, now: SystemTime) -> GrantStatus {
        if self.revoked.is_some() {
            GrantStatus::Revoked
        } else if self.expires_at.is_some_and(|at| at <= now) {
            GrantStatus::Expired
        } else {
            GrantStatus::Active
        }
    }
}

/// A grant's revocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct GrantRevocation {
    /// When.
    pub at: SystemTime,
    /// The administrator's name.
    pub by: String,
    /// Why.
    pub reason: String,
}

/// What is needed to create a grant.
#[derive(Clone, Debug)]
pub(crate) struct NewGrant {
    /// Owning project.
    pub project_id: String,
    /// Account id.
    pub account_id: String,
    /// User id.
    pub user_id: String,
    /// Longest session the grant allows.
    pub max_duration_secs: u64,
    /// When it stops allowing sessions (never if `None`).
    pub expires_at: Option<SystemTime>,
    /// Creation time.
    pub now: SystemTime,
}
