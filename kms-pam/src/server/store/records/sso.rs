//! Single sign-on's rows: providers, people's identities, sign-ins in flight, CLI credentials.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::super::crypto::TokenHash;
use crate::kms::api::{GroupRule, PersonIdentity};
use crate::secret::Secret;

/// A provider's settings beside its issuer and client (stored as one JSON column).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProviderSettings {
    /// Scopes requested.
    pub scopes: Vec<String>,
    /// The claim listing a person's groups.
    pub groups_claim: String,
    /// Group-mapping rules; none: roles are managed in KMS.
    pub rules: Vec<GroupRule>,
    /// Only people an administrator created first may sign in.
    pub require_existing_users: bool,
    /// Lifetime of a CLI's access token, in seconds.
    pub credential_ttl_secs: u64,
}

/// A configured provider, its client secret opened.
#[derive(Clone, Debug)]
pub(crate) struct SsoProviderRecord {
    /// Identifier.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Issuer URL.
    pub issuer: String,
    /// Client id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: Secret,
    /// The rest.
    pub settings: ProviderSettings,
    /// Creation time.
    pub created_at: SystemTime,
}

/// What is needed to add a provider.
#[derive(Clone, Debug)]
pub(crate) struct NewSsoProvider {
    /// Unique name.
    pub name: String,
    /// Issuer URL.
    pub issuer: String,
    /// Client id.
    pub client_id: String,
    /// Client secret (sealed when stored).
    pub client_secret: Secret,
    /// The rest.
    pub settings: ProviderSettings,
    /// Now.
    pub now: SystemTime,
}

/// A user's identity at a provider, with the groups it last had.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct IdentityRecord {
    /// The user.
    pub user_id: String,
    /// Who they are there.
    pub identity: PersonIdentity,
    /// Their groups as last seen.
    pub groups: Vec<String>,
    /// When last seen (sign-in or refresh).
    pub last_seen_at: SystemTime,
}

/// What a sign-in in flight is waiting for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PendingKind {
    /// A browser on its way to the provider and back (console or CLI loopback).
    Login,
    /// A device authorization grant being polled.
    Device,
    /// A code the CLI's loopback listener received, to exchange for a credential.
    Exchange,
}

impl PendingKind {
    /// As stored.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Device => "device",
            Self::Exchange => "exchange",
        }
    }
}

/// A CLI's single sign-on credential.
#[derive(Clone, Debug)]
pub(crate) struct SsoCredentialRecord {
    /// Identifier.
    pub id: String,
    /// The user.
    pub user_id: String,
    /// The provider.
    pub provider_id: String,
    /// The person's identity at it.
    pub issuer: String,
    /// Their subject there.
    pub subject: String,
    /// The provider's refresh token, opened.
    pub provider_refresh: Option<Secret>,
    /// Revoked.
    pub revoked: bool,
}

/// A credential to store, or the new tokens of a refreshed one.
#[derive(Clone, Debug)]
pub(crate) struct NewSsoCredential {
    /// The user.
    pub user_id: String,
    /// The provider.
    pub provider_id: String,
    /// The person's issuer.
    pub issuer: String,
    /// Their subject.
    pub subject: String,
    /// Hash of the access token.
    pub access: TokenHash,
    /// When it stops working.
    pub access_expires_at: SystemTime,
    /// Hash of the refresh token.
    pub refresh: TokenHash,
    /// The provider's refresh token.
    pub provider_refresh: Option<Secret>,
    /// Now.
    pub now: SystemTime,
}
