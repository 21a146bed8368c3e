//! Who a person is at an OpenID provider, as sessions and the API name them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Who a person is at an OpenID provider: the issuer and subject identify them; the email and
/// name are what the provider last said.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonIdentity {
    /// The provider's issuer URL.
    pub issuer: String,
    /// The person's subject at that issuer (`sub`).
    pub subject: String,
    /// Their email address, if the provider gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Their display name, if the provider gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl fmt::Display for PersonIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.email {
            Some(email) => write!(f, "{email} ({} at {})", self.subject, self.issuer),
            None => write!(f, "{} at {}", self.subject, self.issuer),
        }
    }
}
