//! The parameters of route paths, by name. A project's routes also exist under
//! `/v1/projects/{project}/…`, so handlers read their parameters by name (the `project` one is
//! [`super::rights::ProjectScope`]'s) instead of by position.

use serde::Deserialize;

/// `…/{name}`: a resource, user or gateway.
#[derive(Debug, Deserialize)]
pub(crate) struct NamePath {
    /// The name.
    pub(crate) name: String,
}

/// `…/{id}`: a session or grant.
#[derive(Debug, Deserialize)]
pub(crate) struct IdPath {
    /// The id.
    pub(crate) id: String,
}

/// `…/resources/{resource}/accounts[/{account}]`.
#[derive(Debug, Deserialize)]
pub(crate) struct AccountPath {
    /// The resource.
    pub(crate) resource: String,
    /// The account, when the route names one.
    #[serde(default)]
    pub(crate) account: Option<String>,
}

/// `…/sessions/{id}/recordings/{n}`.
#[derive(Debug, Deserialize)]
pub(crate) struct RecordingPath {
    /// The session.
    pub(crate) id: String,
    /// The recording's number (1-based).
    pub(crate) n: usize,
}

/// `/v1/projects/{project}/members/{user}`.
#[derive(Debug, Deserialize)]
pub(crate) struct MemberPath {
    /// The member.
    pub(crate) user: String,
}
