//! The JSON shapes of the KMS HTTP API (docs/api.md), shared by the server and the client.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// Prefix of user API tokens.
pub const USER_TOKEN_PREFIX: &str = "kmsu_";
/// Prefix of gateway API tokens.
pub const GATEWAY_TOKEN_PREFIX: &str = "kmsg_";
/// Prefix of one-time gateway enrollment tokens.
pub const ENROLLMENT_TOKEN_PREFIX: &str = "kmse_";

/// `{"error": {...}}` bodies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The code and message of an API error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// `unauthenticated`, `forbidden`, `not_found`, `conflict`, `invalid`, `unavailable`, `internal`.
    pub code: String,
    /// One line a person can act on; never a secret.
    pub message: String,
}

/// `GET /v1/whoami`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhoAmI {
    /// User or gateway name.
    pub name: String,
    /// `user` or `gateway`.
    pub kind: String,
    /// Whether the user is an administrator.
    pub admin: bool,
}

/// A user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Name.
    pub name: String,
    /// Administrator.
    pub admin: bool,
    /// Creation time.
    #[serde(with = "crate::time::rfc3339")]
    pub created_at: SystemTime,
}

/// `POST /v1/users` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateUser {
    /// Name.
    pub name: String,
    /// Administrator.
    #[serde(default)]
    pub admin: bool,
}

/// `POST /v1/users` answer: the only time the token is shown.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedUser {
    /// The user.
    pub user: User,
    /// Its API token (`kmsu_…`).
    pub token: String,
}

/// A gateway.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gateway {
    /// Name.
    pub name: String,
    /// Address CLIs dial (`host:port`), once enrolled.
    pub address: Option<String>,
    /// `online`, `offline` or `pending` (not enrolled yet).
    pub status: String,
    /// Last heartbeat.
    #[serde(with = "crate::time::rfc3339_option", default)]
    pub last_heartbeat: Option<SystemTime>,
    /// Creation time.
    #[serde(with = "crate::time::rfc3339")]
    pub created_at: SystemTime,
}

/// `POST /v1/gateways` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateGateway {
    /// Name.
    pub name: String,
}

/// `POST /v1/gateways` answer.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedGateway {
    /// The gateway.
    pub gateway: Gateway,
    /// One-time enrollment token (`kmse_…`).
    pub enrollment_token: String,
    /// When the enrollment token stops working.
    #[serde(with = "crate::time::rfc3339")]
    pub expires_at: SystemTime,
}

/// `POST /v1/gateways/enroll` body.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollGateway {
    /// Gateway name.
    pub name: String,
    /// The one-time token.
    pub enrollment_token: String,
    /// CSR for the gateway's server certificate (PEM).
    pub csr: String,
    /// Address CLIs will dial (`host:port`).
    pub address: String,
}

/// `POST /v1/gateways/enroll` answer.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrolledGateway {
    /// Server certificate (PEM).
    pub certificate: String,
    /// The KMS CA (PEM).
    pub ca_certificate: String,
    /// The gateway's API token (`kmsg_…`).
    pub gateway_token: String,
}

/// A PAM resource (a Kubernetes cluster).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    /// Name.
    pub name: String,
    /// `kubernetes`.
    pub kind: String,
    /// API server URL.
    pub url: String,
    /// Gateway name.
    pub gateway: String,
    /// Whether the API server certificate is verified.
    pub ssl_verify: bool,
    /// CA bundle (PEM) to verify it with; system roots when absent.
    pub ca_cert: Option<String>,
    /// Creation time.
    #[serde(with = "crate::time::rfc3339")]
    pub created_at: SystemTime,
}

/// `POST /v1/resources` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateResource {
    /// `kubernetes`.
    pub kind: String,
    /// Name.
    pub name: String,
    /// API server URL.
    pub url: String,
    /// Gateway name.
    pub gateway: String,
    /// Verify the API server certificate.
    #[serde(default = "default_true")]
    pub ssl_verify: bool,
    /// CA bundle (PEM).
    #[serde(default)]
    pub ca_cert: Option<String>,
}

fn default_true() -> bool {
    true
}

/// A PAM account. Never carries its token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Resource name.
    pub resource: String,
    /// Account name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Longest session allowed.
    pub max_duration_secs: u64,
    /// Creation time.
    #[serde(with = "crate::time::rfc3339")]
    pub created_at: SystemTime,
}

/// `POST /v1/resources/{r}/accounts` body.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateAccount {
    /// Account name.
    pub name: String,
    /// The service-account token (stored encrypted, never returned).
    pub token: String,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Longest session allowed (default 8 h).
    #[serde(default)]
    pub max_duration_secs: Option<u64>,
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
}

mod sessions;

pub use sessions::*;

/// `Debug` for request and answer bodies that carry a token: every field but the token, which
/// prints as `[redacted]` (SPEC §2.1: no token in a `Debug` output).
macro_rules! debug_redacting {
    ($type:ident, $secret:ident, [$($field:ident),*]) => {
        impl std::fmt::Debug for $type {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($type))
                    $(.field(stringify!($field), &self.$field))*
                    .field(stringify!($secret), &"[redacted]")
                    .finish()
            }
        }
    };
}

debug_redacting!(CreatedUser, token, [user]);
debug_redacting!(CreatedGateway, enrollment_token, [gateway, expires_at]);
debug_redacting!(EnrollGateway, enrollment_token, [name, address]);
debug_redacting!(EnrolledGateway, gateway_token, []);
debug_redacting!(CreateAccount, token, [name, description, max_duration_secs]);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_a_token() {
        let account = CreateAccount {
            name: "admin".into(),
            token: "eyJ-sa-token".into(),
            description: None,
            max_duration_secs: Some(3600),
        };
        let enroll = EnrollGateway {
            name: "gw".into(),
            enrollment_token: "kmse_secret".into(),
            csr: "CSR".into(),
            address: "10.0.0.5:8443".into(),
        };
        let enrolled = EnrolledGateway {
            certificate: "CERT".into(),
            ca_certificate: "CA".into(),
            gateway_token: "kmsg_secret".into(),
        };
        for (text, secret) in [
            (format!("{account:?}"), "eyJ-sa-token"),
            (format!("{enroll:?}"), "kmse_secret"),
            (format!("{enrolled:?}"), "kmsg_secret"),
        ] {
            assert!(!text.contains(secret), "{text}");
            assert!(text.contains("[redacted]"), "{text}");
        }
        assert!(format!("{account:?}").contains("admin"));
    }
}
