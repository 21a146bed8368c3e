//! Rights inside a PAM project (docs/api.md "Rights").
//!
//! A project's routes exist twice: under `/v1/projects/{project}/…`, and without the prefix for
//! the project `default` (the documented commands, older clients). [`ProjectScope`] resolves which
//! project a request works in. [`InProject`] is a user with a role there (organisation
//! administrators are administrators of every project) and refuses everybody else with
//! `not_found`, so nobody learns that a project they are not in exists; [`ProjectAdmin`] and
//! [`ProjectReader`] narrow it to administrators, and to administrators and auditors. Session
//! routes take [`SessionCaller`] instead (`callers.rs` holds the records): a session's owner may always read and end it, even
//! after losing the membership it was opened under, so their CLI can say why it ended.

use axum::extract::{FromRequestParts, RawPathParams};
use http::request::Parts;

use super::callers::{project_not_found, role_in, InProject, SessionCaller};
use crate::server::edge::auth::AnyUser;
use crate::server::edge::error::ApiError;
use crate::server::edge::state::AppState;
use crate::server::store::{ProjectRecord, StoreError};

/// The project a request works in.
#[derive(Debug, Clone)]
pub(crate) struct ProjectScope(pub(crate) ProjectRecord);

impl FromRequestParts<AppState> for ProjectScope {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::invalid(e.body_text()))?;
        let named = params
            .iter()
            .find(|(key, _)| *key == "project")
            .map(|(_, value)| value.to_owned());
        match named {
            None => Ok(Self((*state.default_project).clone())),
            Some(name) => match state.store.project(&name).await {
                Ok(project) => Ok(Self(project)),
                Err(StoreError::NotFound(_)) => Err(project_not_found(&name)),
                Err(e) => Err(e.into()),
            },
        }
    }
}

impl FromRequestParts<AppState> for InProject {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let AnyUser(user) = AnyUser::from_request_parts(parts, state).await?;
        let ProjectScope(project) = ProjectScope::from_request_parts(parts, state).await?;
        match role_in(state, &project, &user).await? {
            Some(role) => Ok(Self {
                user,
                project,
                role,
            }),
            None => Err(project_not_found(&project.name)),
        }
    }
}

/// An administrator of the route's project.
#[derive(Debug, Clone)]
pub(crate) struct ProjectAdmin(pub(crate) InProject);

impl FromRequestParts<AppState> for ProjectAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = InProject::from_request_parts(parts, state).await?;
        Self::of(caller)
    }
}

impl ProjectAdmin {
    /// `caller` if they administer the project, else the API's refusal (the console's forms
    /// decide with this too).
    pub(crate) fn of(caller: InProject) -> Result<Self, ApiError> {
        if caller.is_admin() {
            Ok(Self(caller))
        } else {
            Err(caller.refused("this: it takes a project administrator"))
        }
    }
}

/// An administrator or auditor of the route's project: someone who reads all of it.
#[derive(Debug, Clone)]
pub(crate) struct ProjectReader(pub(crate) InProject);

impl FromRequestParts<AppState> for ProjectReader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = InProject::from_request_parts(parts, state).await?;
        if caller.reads_every_session() {
            Ok(Self(caller))
        } else {
            Err(caller.refused("this: it takes a project administrator or auditor"))
        }
    }
}

impl FromRequestParts<AppState> for SessionCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let AnyUser(user) = AnyUser::from_request_parts(parts, state).await?;
        let ProjectScope(project) = ProjectScope::from_request_parts(parts, state).await?;
        let role = role_in(state, &project, &user).await?;
        Ok(Self {
            user,
            project,
            role,
        })
    }
}
