//! The organisation's rows: projects and their members, users, gateways.

use std::time::SystemTime;

use crate::kms::api::{GatewayReach, ProjectRole};

use super::super::crypto::TokenHash;

/// A PAM project: the owner of resources, accounts, grants and sessions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ProjectRecord {
    /// Identifier.
    pub id: String,
    /// Name (`default` always exists).
    pub name: String,
    /// Creation time.
    pub created_at: SystemTime,
}

/// A user's membership of a project.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MemberRecord {
    /// The project.
    pub project_id: String,
    /// The user.
    pub user_id: String,
    /// The user's name.
    pub user: String,
    /// Their role.
    pub role: ProjectRole,
    /// When they joined or their role last changed.
    pub created_at: SystemTime,
}

/// A user of the KMS API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct UserRecord {
    /// Identifier.
    pub id: String,
    /// Name, unique regardless of case.
    pub name: String,
    /// Organisation administrator.
    pub admin: bool,
    /// Disabled: its token is refused.
    pub disabled: bool,
    /// Creation time.
    pub created_at: SystemTime,
}

/// What is needed to create a user.
#[derive(Clone, Debug)]
pub(crate) struct NewUser {
    /// Unique name.
    pub name: String,
    /// Administrator.
    pub admin: bool,
    /// Hash of the user's API token.
    pub token: TokenHash,
    /// Creation time.
    pub now: SystemTime,
}

/// A gateway, enrolled or not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct GatewayRecord {
    /// Identifier.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Address CLIs dial, once enrolled (updated by heartbeats).
    pub address: Option<String>,
    /// Whether the gateway has enrolled (holds a gateway token).
    pub enrolled: bool,
    /// Last heartbeat (enrollment counts as one).
    pub last_heartbeat: Option<SystemTime>,
    /// Revoked and not enrolled again since.
    pub revoked: bool,
    /// Creation time.
    pub created_at: SystemTime,
    /// The patterns resource URLs on it must match (`edge::url_scope`); empty: any URL.
    pub allowed_url_hosts: Vec<String>,
    /// How CLIs reach it, as its last heartbeat said; the default (directly, no relay) until
    /// it says otherwise.
    pub reach: GatewayReach,
}

/// What is needed to create a gateway: its name and its one-time enrollment token.
#[derive(Clone, Debug)]
pub(crate) struct NewGateway {
    /// Unique name.
    pub name: String,
    /// Hash of the enrollment token.
    pub enrollment: TokenHash,
    /// When the enrollment token stops working.
    pub enrollment_expires_at: SystemTime,
    /// The projects that may use it from the start.
    pub project_ids: Vec<String>,
    /// Creation time.
    pub now: SystemTime,
}

/// The last step of an enrollment, applied only if the enrollment token is still unspent.
#[derive(Clone, Debug)]
pub(crate) struct Enrollment {
    /// The gateway.
    pub gateway_id: String,
    /// Hash of the enrollment token being spent.
    pub enrollment: TokenHash,
    /// Hash of the gateway's new API token.
    pub token: TokenHash,
    /// The address it announced.
    pub address: String,
    /// Now.
    pub now: SystemTime,
}
