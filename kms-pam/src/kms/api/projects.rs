//! PAM projects and their members: the shapes of `/v1/projects/…`.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::ProjectRole;

/// A PAM project: it owns resources, accounts, grants and sessions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    /// Name.
    pub name: String,
    /// The caller's role in it (`admin` for an organisation administrator).
    #[serde(default)]
    pub role: Option<ProjectRole>,
    /// Creation time.
    #[serde(with = "crate::time::rfc3339")]
    pub created_at: SystemTime,
}

/// `POST /v1/projects` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateProject {
    /// Name.
    pub name: String,
}

/// A user's membership of a project.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The user.
    pub user: String,
    /// Their role.
    pub role: ProjectRole,
    /// When they joined (or their role last changed).
    #[serde(with = "crate::time::rfc3339")]
    pub created_at: SystemTime,
}

/// `PUT /v1/projects/{project}/members/{user}` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetMember {
    /// The role to give.
    pub role: ProjectRole,
}
