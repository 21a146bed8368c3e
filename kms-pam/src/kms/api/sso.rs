//! Single sign-on: the shapes of `/v1/sso/…` (docs/sso.md).
//!
//! An organisation administrator configures OpenID Connect providers ([`CreateSsoProvider`]);
//! people then sign in through one. The console signs them in with a cookie; the CLI gets an
//! [`SsoCredential`]: a short-lived KMS access token (`kmss_…`, hours, set per provider) and a
//! refresh token (`kmsr_…`) that KMS honours only while the provider still honours the person.
//! The provider's own tokens never leave KMS.

use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::ProjectRole;
use crate::secret::Secret;
pub use crate::session::PersonIdentity;

/// Prefix of the short-lived KMS access tokens single sign-on issues.
pub const SSO_ACCESS_PREFIX: &str = "kmss_";
/// Prefix of the refresh tokens that renew them.
pub const SSO_REFRESH_PREFIX: &str = "kmsr_";

/// What a provider group gives its members.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RoleTarget {
    /// Organisation administrator.
    OrgAdmin,
    /// A role in one project.
    Project {
        /// The project's name.
        project: String,
        /// The role.
        role: ProjectRole,
    },
}

/// One group-mapping rule: members of `group` get `target`. Written `GROUP=org-admin` or
/// `GROUP=PROJECT:ROLE` on the command line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRule {
    /// The group as the provider's groups claim names it (exact match).
    pub group: String,
    /// What its members get.
    pub target: RoleTarget,
}

impl fmt::Display for GroupRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.target {
            RoleTarget::OrgAdmin => write!(f, "{}=org-admin", self.group),
            RoleTarget::Project { project, role } => {
                write!(f, "{}={project}:{role}", self.group)
            }
        }
    }
}

impl FromStr for GroupRule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (group, target) = s
            .rsplit_once('=')
            .ok_or_else(|| format!("{s:?}: expected GROUP=org-admin or GROUP=PROJECT:ROLE"))?;
        if group.is_empty() {
            return Err(format!("{s:?}: the group is empty"));
        }
        let target = if target == "org-admin" {
            RoleTarget::OrgAdmin
        } else {
            let (project, role) = target
                .split_once(':')
                .ok_or_else(|| format!("{s:?}: expected GROUP=org-admin or GROUP=PROJECT:ROLE"))?;
            let role = ProjectRole::from_name(role).ok_or_else(|| {
                format!("{s:?}: unknown role {role:?} (admin, member or auditor)")
            })?;
            if project.is_empty() {
                return Err(format!("{s:?}: the project is empty"));
            }
            RoleTarget::Project {
                project: project.to_owned(),
                role,
            }
        };
        Ok(Self {
            group: group.to_owned(),
            target,
        })
    }
}

/// A configured OpenID Connect provider, as administrators read it (never its client secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SsoProvider {
    /// Name, shown on the sign-in page ("Sign in with NAME").
    pub name: String,
    /// Issuer URL; its discovery document is `ISSUER/.well-known/openid-configuration`.
    pub issuer: String,
    /// The client id KMS is registered with.
    pub client_id: String,
    /// Scopes requested.
    pub scopes: Vec<String>,
    /// The ID-token claim that lists a person's groups.
    pub groups_claim: String,
    /// Group-mapping rules. With none, roles are managed in KMS as for any user.
    #[serde(default)]
    pub rules: Vec<GroupRule>,
    /// Only people an administrator created first (user name = email) may sign in.
    #[serde(default)]
    pub require_existing_users: bool,
    /// How long a CLI's KMS access token lasts before it must be refreshed, in seconds.
    pub credential_ttl_secs: u64,
    /// Creation time.
    #[serde(with = "crate::time::rfc3339")]
    pub created_at: SystemTime,
}

/// `POST /v1/sso/providers` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateSsoProvider {
    /// Name.
    pub name: String,
    /// Issuer URL (https; http only for a loopback address).
    pub issuer: String,
    /// Client id.
    pub client_id: String,
    /// Client secret (stored sealed, never shown again).
    pub client_secret: Secret,
    /// Scopes; default `openid email profile groups offline_access`.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// Groups claim; default `groups`.
    #[serde(default)]
    pub groups_claim: Option<String>,
    /// Group-mapping rules.
    #[serde(default)]
    pub rules: Vec<GroupRule>,
    /// Only people an administrator created first may sign in.
    #[serde(default)]
    pub require_existing_users: bool,
    /// Lifetime of a CLI's KMS access token in seconds; default 8 hours.
    #[serde(default)]
    pub credential_ttl_secs: Option<u64>,
}

/// `GET /v1/sso/providers/names`: what the sign-in page and `kms-pam login --sso` offer, without
/// authentication.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SsoProviderNames {
    /// Provider names, sorted.
    pub providers: Vec<String>,
}

/// What single sign-on gives the CLI: a KMS credential, never the provider's tokens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SsoCredential {
    /// KMS access token (`kmss_…`), sent as a bearer token like an API token.
    pub access_token: Secret,
    /// When the access token stops working.
    #[serde(with = "crate::time::rfc3339")]
    pub expires_at: SystemTime,
    /// Refresh token (`kmsr_…`), single use: each refresh returns a new one.
    pub refresh_token: Secret,
    /// The provider signed in through.
    pub provider: String,
    /// The KMS user.
    pub user: String,
    /// Whether they administer the organisation (as their groups say now).
    pub admin: bool,
    /// Who they are at the provider.
    pub identity: PersonIdentity,
}

/// `POST /v1/sso/exchange` body: the one-time code KMS handed the CLI's loopback listener,
/// with the PKCE verifier only that CLI knows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SsoExchange {
    /// The code from the loopback redirect.
    pub code: Secret,
    /// The verifier whose S256 challenge started the sign-in.
    pub verifier: Secret,
}

/// `POST /v1/sso/device` body: start a device authorization grant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartDeviceSignIn {
    /// The provider.
    pub provider: String,
}

/// `POST /v1/sso/device` answer: what the person must do, and the handle to poll with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceSignIn {
    /// Secret handle for `POST /v1/sso/device/poll`.
    pub handle: Secret,
    /// The code the person enters at the provider.
    pub user_code: String,
    /// Where they enter it.
    pub verification_uri: String,
    /// The same page with the code filled in, when the provider offers one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_uri_complete: Option<String>,
    /// Seconds to wait between polls.
    pub interval_secs: u64,
    /// When the code stops working.
    #[serde(with = "crate::time::rfc3339")]
    pub expires_at: SystemTime,
}

/// `POST /v1/sso/device/poll` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollDeviceSignIn {
    /// The handle [`DeviceSignIn`] gave.
    pub handle: Secret,
}

/// `POST /v1/sso/device/poll` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum DevicePoll {
    /// The person has not finished yet: poll again after `interval_secs`.
    Pending {
        /// Seconds to wait.
        interval_secs: u64,
    },
    /// Signed in.
    Complete {
        /// The CLI's credential.
        credential: Box<SsoCredential>,
    },
}

/// `POST /v1/sso/refresh` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshSso {
    /// The refresh token of the last [`SsoCredential`].
    pub refresh_token: Secret,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_rules_parse_and_print_both_forms() {
        for text in ["k8s-admins=org-admin", "ops=prod:member", "a=b=c:auditor"] {
            let rule: GroupRule = text.parse().unwrap();
            assert_eq!(rule.to_string(), text);
        }
        let rule: GroupRule = "sre=default:admin".parse().unwrap();
        assert_eq!(
            rule.target,
            RoleTarget::Project {
                project: "default".into(),
                role: ProjectRole::Admin
            }
        );
        for bad in [
            "",
            "sre",
            "=org-admin",
            "sre=prod",
            "sre=prod:owner",
            "sre=:member",
        ] {
            assert!(bad.parse::<GroupRule>().is_err(), "{bad:?}");
        }
    }
}
