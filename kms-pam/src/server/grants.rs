//! Grants: which user may open sessions for which account, and for how long at most.

use axum::extract::State;
use axum::Json;
use http::StatusCode;

use super::auth::AdminUser;
use super::error::{ApiError, ApiJson, ApiPath};
use super::state::{now, AppState};
use super::views;
use crate::kms::api::{CreateGrant, Grant};
use crate::server::store::NewGrant;
use crate::time::format_duration;

/// `POST /v1/grants`: the grant's maximum defaults to the account's and may not exceed it.
pub(crate) async fn create(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    ApiJson(body): ApiJson<CreateGrant>,
) -> Result<(StatusCode, Json<Grant>), ApiError> {
    let project = state.project_id();
    let account = state
        .store
        .account(project, &body.resource, &body.account)
        .await?;
    let user = state.store.user_by_name(&body.user).await?;
    let max = body.max_duration_secs.unwrap_or(account.max_duration_secs);
    if max == 0 || max > account.max_duration_secs {
        return Err(ApiError::invalid(format!(
            "max_duration_secs must be between 1 and the account's maximum of {}s ({})",
            account.max_duration_secs,
            format_duration(std::time::Duration::from_secs(account.max_duration_secs))
        )));
    }
    let grant = state
        .store
        .create_grant(NewGrant {
            project_id: project.to_owned(),
            account_id: account.id,
            user_id: user.id,
            max_duration_secs: max,
            now: now(),
        })
        .await?;
    tracing::info!(
        by = %admin.name,
        grant = %grant.id,
        user = %grant.user,
        account = %format!("{}/{}", grant.resource, grant.account),
        "grant created"
    );
    Ok((StatusCode::CREATED, Json(views::grant(&grant))))
}

/// `GET /v1/grants`.
pub(crate) async fn list(
    State(state): State<AppState>,
    AdminUser(_): AdminUser,
) -> Result<Json<Vec<Grant>>, ApiError> {
    let grants = state.store.grants(state.project_id(), None).await?;
    Ok(Json(grants.iter().map(views::grant).collect()))
}

/// `DELETE /v1/grants/{id}`. Sessions already opened under the grant run to their end.
pub(crate) async fn delete(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.store.delete_grant(state.project_id(), &id).await?;
    tracing::info!(by = %admin.name, grant = %id, "grant deleted");
    Ok(StatusCode::NO_CONTENT)
}
