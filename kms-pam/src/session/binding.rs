//! What a session's signed record binds besides its names: [`SessionBinding`].

use serde::{Deserialize, Serialize};

use super::PersonIdentity;

/// The facts about a session's origin that its signed record binds besides the names: the
/// project it belongs to and the user's id (names can be re-created, ids cannot), and the
/// address and `User-Agent` KMS saw the session requested from, and after single sign-on who the
/// person is at their provider. Moving a session to another
/// project, handing it to another user or editing where it came from is then visible to
/// `sessions verify`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SessionBinding {
    /// The owning project's id.
    pub project_id: String,
    /// The user's id.
    pub user_id: String,
    /// The network address the session was requested from, when KMS recorded one.
    #[serde(default)]
    pub client_address: Option<String>,
    /// The `User-Agent` of the client that requested it, when it sent one.
    #[serde(default)]
    pub user_agent: Option<String>,
    /// Who the user is at the OpenID provider they signed in with, when they opened the session
    /// after single sign-on (absent otherwise, and in records written before it was bound).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<PersonIdentity>,
}

impl SessionBinding {
    /// A binding to project `project_id` and user `user_id`, with no client recorded.
    pub fn new(project_id: impl Into<String>, user_id: impl Into<String>) -> Self {
        Self {
            project_id: project_id.into(),
            user_id: user_id.into(),
            client_address: None,
            user_agent: None,
            identity: None,
        }
    }

    /// With the client's address and `User-Agent` as KMS recorded them.
    #[must_use]
    pub fn with_client(mut self, address: Option<String>, user_agent: Option<String>) -> Self {
        self.client_address = address;
        self.user_agent = user_agent;
        self
    }

    /// With the person's provider identity, after single sign-on.
    #[must_use]
    pub fn with_identity(mut self, identity: Option<PersonIdentity>) -> Self {
        self.identity = identity;
        self
    }
}
