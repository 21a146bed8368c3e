//! Who calls, in a project: a user with a role there ([`InProject`]) or a user asking about one
//! of its sessions ([`SessionCaller`]), and how a role is found. Plain records: `rights.rs`
//! draws them from a request, the console from its sign-in, and the session lifecycle reads
//! them.

use crate::kms::api::ProjectRole;
use crate::server::edge::error::ApiError;
use crate::server::edge::state::AppState;
use crate::server::store::{ProjectRecord, UserRecord};

/// The one answer for a project that does not exist and one the caller is not in.
pub(crate) fn project_not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("project {name} not found"))
}

/// The role `user` has in `project`: administrator for an organisation administrator, else
/// their membership's, if any.
pub(crate) async fn role_in(
    state: &AppState,
    project: &ProjectRecord,
    user: &UserRecord,
) -> Result<Option<ProjectRole>, ApiError> {
    if user.admin {
        return Ok(Some(ProjectRole::Admin));
    }
    Ok(state.store.role_of(&project.id, &user.id).await?)
}

/// A user with a role in the route's project.
#[derive(Debug, Clone)]
pub(crate) struct InProject {
    /// The user.
    pub(crate) user: UserRecord,
    /// The project.
    pub(crate) project: ProjectRecord,
    /// Their role there.
    pub(crate) role: ProjectRole,
}

impl InProject {
    /// The project's id.
    pub(crate) fn project_id(&self) -> &str {
        &self.project.id
    }

    /// Whether they manage the project.
    pub(crate) fn is_admin(&self) -> bool {
        self.role == ProjectRole::Admin
    }

    /// Whether they read every session of the project (administrators and auditors).
    pub(crate) fn reads_every_session(&self) -> bool {
        matches!(self.role, ProjectRole::Admin | ProjectRole::Auditor)
    }

    /// The refusal of something their role does not allow.
    pub(crate) fn refused(&self, what: &str) -> ApiError {
        ApiError::forbidden(format!(
            "your role in project {} ({}) does not allow {what}",
            self.project.name, self.role
        ))
    }
}

/// A user asking about a session of the route's project, with their role there if they have
/// one; whether they may see that session is the session lifecycle's to say
/// (`lifecycle/visibility.rs`).
#[derive(Debug, Clone)]
pub(crate) struct SessionCaller {
    /// The user.
    pub(crate) user: UserRecord,
    /// The project.
    pub(crate) project: ProjectRecord,
    /// Their role there, if any.
    pub(crate) role: Option<ProjectRole>,
}
