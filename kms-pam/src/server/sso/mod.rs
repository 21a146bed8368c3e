//! Single sign-on with OpenID Connect (docs/sso.md): the console's and the CLI's sign-ins, who a
//! person becomes in KMS, and the CLI's short-lived credentials.
//!
//! - `provider.rs` talks to a provider: discovery, keys (fetched again on an unknown `kid`, so
//!   rotations are picked up), token and device endpoints.
//! - `verify.rs` checks an ID token (signature, issuer, audience, expiry, nonce).
//! - `roles.rs` maps the groups claim to organisation and project roles and applies them,
//!   ending the sessions a lost role no longer allows.
//! - `signin.rs` runs a sign-in: authorization code with PKCE, `state` and `nonce` for browsers
//!   (the console's, or the CLI's through its loopback listener), the device authorization
//!   grant for headless CLIs, and who the person is in KMS.
//! - `credentials.rs` issues the CLI's KMS credential and refreshes it through the provider;
//!   `device.rs` runs the device authorization grant for a CLI without a browser.
//!
//! Everything in flight is in the store (`sso_pending`, sealed, spent once), so any replica can
//! finish what another began.

pub(crate) mod credentials;
pub(crate) mod device;
pub(crate) mod provider;
pub(crate) mod roles;
pub(crate) mod signin;
#[cfg(test)]
pub(crate) mod test_key;
pub(crate) mod verify;

use crate::server::edge::error::ApiError;
use crate::server::store::StoreError;

/// How long a browser may take at the provider.
pub(crate) const LOGIN_TTL: std::time::Duration = std::time::Duration::from_secs(600);
/// How long the CLI's loopback listener has to exchange its code.
pub(crate) const EXCHANGE_TTL: std::time::Duration = std::time::Duration::from_secs(120);
/// A CLI credential's lifetime when the provider sets none.
pub(crate) const DEFAULT_CREDENTIAL_TTL_SECS: u64 = 8 * 3600;
/// Scopes requested when the provider sets none.
pub(crate) const DEFAULT_SCOPES: [&str; 5] =
    ["openid", "email", "profile", "groups", "offline_access"];

/// Why a sign-in or refresh failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SsoError {
    /// The provider cannot be reached (503; sessions already open continue).
    #[error("{0}")]
    Down(String),
    /// The provider answered something KMS cannot use (502).
    #[error("{0}")]
    Provider(String),
    /// The provider refused (an OAuth error such as `invalid_grant`).
    #[error("the provider refused: {error}{}", if description.is_empty() { String::new() } else { format!(" ({description})") })]
    Refused {
        /// The OAuth error code.
        error: String,
        /// Its description.
        description: String,
    },
    /// The request is wrong: an unknown provider, a `state` or code unknown, spent or expired,
    /// a token that does not verify (400).
    #[error("{0}")]
    Invalid(String),
    /// The person may not sign in (403).
    #[error("{0}")]
    Denied(String),
    /// A refresh token KMS does not honour (401).
    #[error("{0}")]
    Unauthenticated(String),
    /// KMS failed.
    #[error("{0}")]
    Internal(String),
    /// The store or a rule of the API refused.
    #[error("{}", .0.message())]
    Api(ApiError),
}

impl From<ApiError> for SsoError {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}

impl From<StoreError> for SsoError {
    fn from(e: StoreError) -> Self {
        Self::Api(e.into())
    }
}

impl From<verify::Refused> for SsoError {
    fn from(e: verify::Refused) -> Self {
        Self::Invalid(e.0)
    }
}

impl From<SsoError> for ApiError {
    fn from(e: SsoError) -> Self {
        match e {
            SsoError::Down(m) | SsoError::Provider(m) => ApiError::unavailable(m),
            SsoError::Refused { .. } => ApiError::unauthenticated(e.to_string()),
            SsoError::Invalid(m) => ApiError::invalid(m),
            SsoError::Denied(m) => ApiError::forbidden(m),
            SsoError::Unauthenticated(m) => ApiError::unauthenticated(m),
            SsoError::Internal(m) => ApiError::internal(&m),
            SsoError::Api(e) => e,
        }
    }
}
