//! A project's members and their roles. Project administrators (and the organisation
//! administrator) manage them; auditors may read the list. Changing a role or removing a member
//! ends the sessions they could no longer open, at once.

use axum::extract::State;
use axum::Json;
use http::StatusCode;

use crate::kms::api::{Member, ProjectRole, SetMember};
use crate::server::edge::error::ApiError;
use crate::server::edge::extract::{ApiJson, ApiPath};
use crate::server::edge::paths::MemberPath;
use crate::server::edge::rights::{ProjectAdmin, ProjectReader};
use crate::server::edge::state::{now, AppState};
use crate::server::edge::views;
use crate::server::lifecycle::ending::end_sessions;
use crate::server::store::{ActiveSessions, StoreError};
use crate::session::EndCause;

/// `GET /v1/projects/{project}/members`.
pub(crate) async fn list(
    State(state): State<AppState>,
    ProjectReader(reader): ProjectReader,
) -> Result<Json<Vec<Member>>, ApiError> {
    let members = state.store.members(reader.project_id()).await?;
    Ok(Json(members.iter().map(views::member).collect()))
}

/// `PUT /v1/projects/{project}/members/{user}`: adds the user with the role, or changes it.
/// Moving to a role that could not have opened a running session ends it (cause
/// `role_changed`): auditors open none, members only under a grant.
pub(crate) async fn set(
    State(state): State<AppState>,
    ProjectAdmin(admin): ProjectAdmin,
    ApiPath(MemberPath { user: name }): ApiPath<MemberPath>,
    ApiJson(body): ApiJson<SetMember>,
) -> Result<Json<Member>, ApiError> {
    if body.role == ProjectRole::Unknown {
        return Err(ApiError::invalid("role must be admin, member or auditor"));
    }
    let user = state.store.user_by_name(&name).await?;
    let previous = state
        .store
        .set_member(admin.project_id(), &user.id, body.role, now())
        .await?;
    let mut which = ActiveSessions {
        project_id: Some(admin.project_id().to_owned()),
        user_id: Some(user.id.clone()),
        ..ActiveSessions::default()
    };
    // An organisation administrator keeps administrator rights whatever their membership says.
    let changed = !user.admin && previous != Some(body.role);
    let lost = changed
        && match (previous, body.role) {
            (_, ProjectRole::Auditor) => true,
            (Some(ProjectRole::Admin), ProjectRole::Member) => {
                which.without_grant = true;
                true
            }
            _ => false,
        };
    if lost {
        end_sessions(&state, which, EndCause::RoleChanged, &admin.user.name).await?;
    }
    tracing::info!(by = %admin.user.name, project = %admin.project.name, user = %user.name,
        role = %body.role, previous = ?previous.map(ProjectRole::as_str), "member set");
    let members = state.store.members(admin.project_id()).await?;
    members
        .iter()
        .find(|m| m.user_id == user.id)
        .map(|m| Json(views::member(m)))
        .ok_or_else(|| ApiError::not_found(format!("user {name} not found")))
}

/// `DELETE /v1/projects/{project}/members/{user}`: their active sessions in the project end
/// (cause `membership_removed`) and their grants there go.
pub(crate) async fn remove(
    State(state): State<AppState>,
    ProjectAdmin(admin): ProjectAdmin,
    ApiPath(MemberPath { user: name }): ApiPath<MemberPath>,
) -> Result<StatusCode, ApiError> {
    let user = state.store.user_by_name(&name).await?;
    state
        .store
        .remove_member(admin.project_id(), &user.id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound(_) => ApiError::not_found(format!(
                "{} is not a member of project {}",
                user.name, admin.project.name
            )),
            other => other.into(),
        })?;
    let which = ActiveSessions {
        project_id: Some(admin.project_id().to_owned()),
        user_id: Some(user.id.clone()),
        ..ActiveSessions::default()
    };
    // An organisation administrator keeps their rights without the membership.
    let ended = if user.admin {
        0
    } else {
        end_sessions(&state, which, EndCause::MembershipRemoved, &admin.user.name).await?
    };
    tracing::info!(by = %admin.user.name, project = %admin.project.name, user = %user.name,
        sessions_ended = ended, "member removed");
    Ok(StatusCode::NO_CONTENT)
}
