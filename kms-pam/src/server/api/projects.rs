//! PAM projects: the organisation administrator creates and deletes them; everybody lists the
//! ones they belong to. The project `default` always exists.

use axum::extract::State;
use axum::Json;
use http::StatusCode;

use crate::kms::api::{CreateProject, Project, ProjectRole, DEFAULT_PROJECT};
use crate::server::edge::auth::{AdminUser, AnyUser};
use crate::server::edge::callers::InProject;
use crate::server::edge::error::ApiError;
use crate::server::edge::extract::ApiJson;
use crate::server::edge::state::{now, AppState};
use crate::server::edge::{validate, views};

/// `POST /v1/projects`.
pub(crate) async fn create(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    ApiJson(body): ApiJson<CreateProject>,
) -> Result<(StatusCode, Json<Project>), ApiError> {
    validate::name("project", &body.name)?;
    let project = state.store.create_project(&body.name, now()).await?;
    tracing::info!(by = %admin.name, project = %project.name, "project created");
    Ok((
        StatusCode::CREATED,
        Json(views::project(&project, Some(ProjectRole::Admin))),
    ))
}

/// `GET /v1/projects`: an organisation administrator sees every project; anybody else the ones
/// they are a member of, with their role.
pub(crate) async fn list(
    State(state): State<AppState>,
    AnyUser(user): AnyUser,
) -> Result<Json<Vec<Project>>, ApiError> {
    let projects = if user.admin {
        let all = state.store.projects().await?;
        all.iter()
            .map(|p| views::project(p, Some(ProjectRole::Admin)))
            .collect()
    } else {
        let mine = state.store.memberships(&user.id).await?;
        mine.iter()
            .map(|(p, role)| views::project(p, Some(*role)))
            .collect()
    };
    Ok(Json(projects))
}

/// `GET /v1/projects/{project}`: its members (any role) and organisation administrators.
pub(crate) async fn show(caller: InProject) -> Json<Project> {
    Json(views::project(&caller.project, Some(caller.role)))
}

/// `DELETE /v1/projects/{project}`: refused for `default` and while the project has resources
/// (delete them first: that ends their sessions); the sessions' history stays in the database.
pub(crate) async fn delete(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    caller: InProject,
) -> Result<StatusCode, ApiError> {
    if caller.project.name == DEFAULT_PROJECT {
        return Err(ApiError::conflict("the project default cannot be deleted"));
    }
    state
        .store
        .delete_project(&caller.project.id, now())
        .await
        .map_err(|e| match e {
            crate::server::store::StoreError::Conflict(why) => ApiError::conflict(format!(
                "project {} cannot be deleted: {why} (kms-pam --project {} pam resource delete NAME)",
                caller.project.name, caller.project.name
            )),
            other => other.into(),
        })?;
    tracing::info!(by = %admin.name, project = %caller.project.name, "project deleted");
    Ok(StatusCode::NO_CONTENT)
}
