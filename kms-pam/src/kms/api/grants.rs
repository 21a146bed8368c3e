//! Grants: which user may open sessions for which account, for how long at most, and until when.

use std::fmt;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// Whether a grant still allows sessions. Serialized lowercase; any other string (from a newer
/// KMS) reads as `Unknown`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum GrantStatus {
    /// It allows sessions.
    #[default]
    Active,
    /// Its expiry has passed; its sessions were ended.
    Expired,
    /// An administrator revoked it; its sessions were ended.
    Revoked,
    /// A status this version does not know (from a newer KMS).
    #[serde(other)]
    Unknown,
}

impl GrantStatus {
    /// The status as it appears on the wire (`active`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
            Self::Unknown => "unknown",
        }
    }
}

impl fmt::Display for GrantStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A grant: a user may open sessions for an account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Identifier.
    pub id: String,
    /// Resource.
    pub resource: String,
    /// Account.
    pub account: String,
    /// User.
    pub user: String,
    /// Longest session the grant allows.
    pub max_duration_secs: u64,
    /// Creation time.
    #[serde(with = "crate::time::rfc3339")]
    pub created_at: SystemTime,
    /// Active, expired or revoked (a KMS before grant lifetimes sends none: active).
    #[serde(default)]
    pub status: GrantStatus,
    /// When the grant stops allowing sessions (never if absent).
    #[serde(with = "crate::time::rfc3339_option", default)]
    pub expires_at: Option<SystemTime>,
    /// When it was revoked.
    #[serde(with = "crate::time::rfc3339_option", default)]
    pub revoked_at: Option<SystemTime>,
    /// Who revoked it.
    #[serde(default)]
    pub revoked_by: Option<String>,
    /// Why it was revoked.
    #[serde(default)]
    pub revoke_reason: Option<String>,
}

/// `POST /v1/grants` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateGrant {
    /// Resource.
    pub resource: String,
    /// Account.
    pub account: String,
    /// User.
    pub user: String,
    /// Longest session (default: the account's maximum).
    #[serde(default)]
    pub max_duration_secs: Option<u64>,
    /// When the grant stops allowing sessions (default: never); must be in the future.
    #[serde(
        with = "crate::time::rfc3339_option",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub expires_at: Option<SystemTime>,
}

/// `POST /v1/grants/{id}/revoke` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeGrant {
    /// Why (required, shown in the grant list).
    pub reason: String,
}
