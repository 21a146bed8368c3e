//! The JSON shapes of the KMS HTTP API (docs/api.md): one type per shape, serialized by the
//! server and read by the client, so neither side digs through untyped JSON.
//!
//! Codes and statuses are enums ([`ErrorCode`], [`PrincipalKind`], [`GatewayStatus`],
//! [`ResourceKind`], [`ProjectRole`]) that read an unknown value as `Unknown`; tokens are [`Secret`]s, whose
//! `Debug` prints `[redacted]` while their JSON carries the value; a session's history is the
//! [`audit`](crate::audit) module's own types ([`SessionDetail`], [`Command`],
//! [`RequestSummary`], [`StreamSummary`]), and `sessions verify` answers a [`ChainReport`].

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::credential::sealing::SealingPublicKey;
use crate::secret::Secret;

mod codes;
mod grants;
mod projects;
mod sessions;
mod sso;

pub use codes::{ErrorCode, GatewayStatus, PrincipalKind, ProjectRole, ResourceKind};
pub use grants::{CreateGrant, Grant, GrantStatus, RevokeGrant};
pub use projects::{CreateProject, Member, Project, SetMember};
pub use sessions::*;
pub use sso::*;

// Shapes the API shares with the layers below it, named where they are used.
pub use crate::session::{SessionView, DEFAULT_PROJECT};

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
    /// What kind of failure it is.
    pub code: ErrorCode,
    /// One line a person can act on; never a secret.
    pub message: String,
}

/// `GET /v1/whoami`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhoAmI {
    /// User or gateway name.
    pub name: String,
    /// A user's or a gateway's token.
    pub kind: PrincipalKind,
    /// Whether the user is an administrator.
    pub admin: bool,
    /// Who the person is at the OpenID provider they signed in with (single sign-on only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<PersonIdentity>,
}

/// A user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Name (unique regardless of case).
    pub name: String,
    /// Organisation administrator: manages users, gateways and projects, and administers every
    /// project.
    pub admin: bool,
    /// Disabled: its token is refused until an administrator enables it again.
    #[serde(default)]
    pub disabled: bool,
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedUser {
    /// The user.
    pub user: User,
    /// Its API token (`kmsu_…`).
    pub token: Secret,
}

/// A gateway.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gateway {
    /// Name.
    pub name: String,
    /// Address CLIs dial (`host:port`), once enrolled.
    pub address: Option<String>,
    /// Online, offline, or pending (not enrolled yet).
    pub status: GatewayStatus,
    /// Last heartbeat.
    #[serde(with = "crate::time::rfc3339_option", default)]
    pub last_heartbeat: Option<SystemTime>,
    /// Creation time.
    #[serde(with = "crate::time::rfc3339")]
    pub created_at: SystemTime,
    /// The key that signs its session events, once registered (enrollment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_key: Option<PublicKey>,
    /// The projects whose resources may use it, by name (set by an organisation admin; a
    /// user who is not one sees only their own projects here).
    #[serde(default)]
    pub projects: Vec<String>,
    /// The patterns its resources' API server URLs must match (docs/api.md, "Gateway
    /// scope"); empty: any URL.
    #[serde(default)]
    pub allowed_url_hosts: Vec<String>,
    /// How CLIs reach it, as its last heartbeat said (directly, through relays).
    #[serde(default)]
    pub reach: GatewayReach,
}

/// `POST /v1/gateways` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateGateway {
    /// Name.
    pub name: String,
    /// The projects that may use it; empty: `default`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub projects: Vec<String>,
}

/// `PATCH /v1/gateways/{name}` body: what is given changes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateGateway {
    /// The new allow-list of resource URL hosts, replacing the old one; empty: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_url_hosts: Option<Vec<String>>,
}

/// `POST /v1/gateways/{name}/projects` body: the project that may use the gateway.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignGateway {
    /// Project name.
    pub project: String,
}

/// `POST /v1/gateways` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedGateway {
    /// The gateway.
    pub gateway: Gateway,
    /// One-time enrollment token (`kmse_…`).
    pub enrollment_token: Secret,
    /// When the enrollment token stops working.
    #[serde(with = "crate::time::rfc3339")]
    pub expires_at: SystemTime,
}

/// `POST /v1/gateways/enroll` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollGateway {
    /// Gateway name.
    pub name: String,
    /// The one-time token.
    pub enrollment_token: Secret,
    /// CSR for the gateway's server certificate (PEM).
    pub csr: String,
    /// Address CLIs will dial (`host:port`).
    pub address: String,
    /// The public half of the key the gateway signs session events with (made with the
    /// identity, kept in its data dir).
    #[serde(default)]
    pub audit_key: Option<PublicKey>,
    /// The public half of the key KMS seals this gateway's credentials to (made with the
    /// identity, kept in its data dir; not the audit key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealing_key: Option<SealingPublicKey>,
}

/// `POST /v1/gateways/enroll` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrolledGateway {
    /// Server certificate (PEM).
    pub certificate: String,
    /// The KMS CA (PEM).
    pub ca_certificate: String,
    /// The gateway's API token (`kmsg_…`).
    pub gateway_token: Secret,
}

/// A PAM resource (a Kubernetes cluster).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    /// Name.
    pub name: String,
    /// What it is.
    pub kind: ResourceKind,
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
    /// What the gateway records of its streams, and what it refuses.
    #[serde(default)]
    pub recording: RecordingPolicy,
}

/// `POST /v1/resources` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateResource {
    /// What it is; KMS refuses kinds it does not support.
    pub kind: ResourceKind,
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
    /// Recording policy: refuse (default) or allow streams the gateway cannot record, and the
    /// recording caps.
    #[serde(default)]
    pub recording: RecordingPolicy,
}

/// `PATCH /v1/resources/{name}` body: each field given replaces the resource's; an absent field
/// leaves it as it is. Its name and kind never change.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateResource {
    /// New API server URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// New gateway (its name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Whether to verify the API server certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_verify: Option<bool>,
    /// New CA bundle (PEM); an empty one removes it (the system roots are used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<String>,
    /// New recording policy, replacing the whole policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording: Option<RecordingPolicy>,
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateAccount {
    /// Account name.
    pub name: String,
    /// The service-account token (stored encrypted, never returned).
    pub token: Secret,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Longest session allowed (default 8 h).
    #[serde(default)]
    pub max_duration_secs: Option<u64>,
}

/// `PATCH /v1/resources/{r}/accounts/{a}` body: each field given replaces the account's; an
/// absent field leaves it as it is (so an absent token means "token unchanged").
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateAccount {
    /// New description; an empty one clears it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// New longest session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration_secs: Option<u64>,
    /// A new service-account token (stored encrypted, never returned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn gateway() -> Gateway {
        Gateway {
            name: "gw".into(),
            address: None,
            status: GatewayStatus::Pending,
            last_heartbeat: None,
            created_at: SystemTime::UNIX_EPOCH,
            audit_key: None,
            projects: Vec::new(),
            allowed_url_hosts: Vec::new(),
            reach: GatewayReach::default(),
        }
    }

    /// security invariant 1, docs/security.md: no token in a `Debug` output, however the body holding it is printed.
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
            audit_key: None,
            sealing_key: None,
        };
        let enrolled = EnrolledGateway {
            certificate: "CERT".into(),
            ca_certificate: "CA".into(),
            gateway_token: "kmsg_secret".into(),
        };
        let user = CreatedUser {
            user: User {
                name: "alice".into(),
                admin: false,
                disabled: false,
                created_at: SystemTime::UNIX_EPOCH,
            },
            token: "kmsu_secret".into(),
        };
        let created = CreatedGateway {
            gateway: gateway(),
            enrollment_token: "kmse_other".into(),
            expires_at: SystemTime::UNIX_EPOCH + Duration::from_secs(3600),
        };
        // The credential carries no token in clear any more; its sealed bytes are not shown.
        let credential = GatewayCredential {
            url: "https://10.0.0.1:6443".into(),
            ssl_verify: true,
            ca_cert: None,
            sealed_token: crate::credential::sealing::SealedToken {
                suite: "s".into(),
                enc: "ENC".into(),
                ciphertext: "eyJ-credential-sealed".into(),
            },
            recording: RecordingPolicy::default(),
        };
        assert!(!format!("{credential:?}").contains("eyJ-credential-sealed"));
        for (text, secret) in [
            (format!("{account:?}"), "eyJ-sa-token"),
            (format!("{enroll:?}"), "kmse_secret"),
            (format!("{enrolled:?}"), "kmsg_secret"),
            (format!("{user:#?}"), "kmsu_secret"),
            (format!("{created:?}"), "kmse_other"),
        ] {
            assert!(!text.contains(secret), "{text}");
            assert!(text.contains("[redacted]"), "{text}");
        }
        assert!(format!("{account:?}").contains("admin"));
        assert!(format!("{user:?}").contains("alice"));
    }

    /// The wire carries tokens as plain strings, as before they were `Secret`s.
    #[test]
    fn tokens_are_plain_strings_on_the_wire() {
        let user: CreatedUser = serde_json::from_str(
            r#"{"user":{"name":"alice","admin":true,"created_at":"2025-01-01T00:00:00Z"},
                "token":"kmsu_abc"}"#,
        )
        .unwrap();
        assert_eq!(user.token.expose(), "kmsu_abc");
        let json = serde_json::to_value(&user).unwrap();
        assert_eq!(json["token"], "kmsu_abc");
        let me: WhoAmI =
            serde_json::from_str(r#"{"name":"gw","kind":"gateway","admin":false}"#).unwrap();
        assert_eq!(me.kind, PrincipalKind::Gateway);
        let error: ErrorBody =
            serde_json::from_str(r#"{"error":{"code":"not_found","message":"no"}}"#).unwrap();
        assert_eq!(error.error.code, ErrorCode::NotFound);
        let json = serde_json::to_value(gateway()).unwrap();
        assert_eq!(json["status"], "pending");
    }

    /// Older gateways send no reach and older KMSs answer no `direct`: both mean directly.
    #[test]
    fn reach_defaults_to_direct_and_reads_as_people_say_it() {
        let beat: Heartbeat = serde_json::from_str(r#"{"address":"gw:8443"}"#).unwrap();
        assert_eq!(beat.reach, GatewayReach::default());
        assert!(beat.reach.direct && beat.reach.relays.is_empty());
        let view: Gateway = serde_json::from_value(serde_json::json!({"name": "gw",
            "address": null, "status": "online", "last_heartbeat": null,
            "created_at": "2025-01-01T00:00:00Z"}))
        .unwrap();
        assert_eq!(view.reach, GatewayReach::default());
        let link = |url: &str, connected| RelayLink {
            url: url.into(),
            connected,
        };
        let relays = vec![link("r1:443", true), link("r2:443", false)];
        for (direct, relays, text) in [
            (true, Vec::new(), "direct"),
            (false, Vec::new(), "none"),
            (false, relays.clone(), "relays r1:443 (up), r2:443 (down)"),
            (true, relays[1..].to_vec(), "direct + relays r2:443 (down)"),
        ] {
            assert_eq!(GatewayReach { direct, relays }.to_string(), text);
        }
    }
}
