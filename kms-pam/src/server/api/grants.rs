//! Grants: which member of a project may open sessions for which account, for how long at
//! most, and until when. Revoking or deleting a grant ends the sessions opened under it; the
//! reaper ends those of a grant that expired (`lifecycle::reaper`).

use axum::extract::State;
use axum::Json;
use http::StatusCode;

use crate::kms::api::{CreateGrant, Grant, ProjectRole, RevokeGrant};
use crate::server::edge::callers::role_in;
use crate::server::edge::error::ApiError;
use crate::server::edge::extract::{ApiJson, ApiPath};
use crate::server::edge::paths::IdPath;
use crate::server::edge::rights::{ProjectAdmin, ProjectReader};
use crate::server::edge::state::{now, AppState};
use crate::server::edge::views;
use crate::server::lifecycle::ending::end_sessions;
use crate::server::store::{ActiveSessions, NewGrant};
use crate::session::EndCause;
use crate::time::{format_duration, format_rfc3339};

/// `POST /v1/grants`: the user must be a member (or administrator) of the project; the grant's
/// maximum defaults to the account's and may not exceed it; its expiry, if any, must be later
/// than now.
pub(crate) async fn create(
    State(state): State<AppState>,
    ProjectAdmin(admin): ProjectAdmin,
    ApiJson(body): ApiJson<CreateGrant>,
) -> Result<(StatusCode, Json<Grant>), ApiError> {
    let project = admin.project_id();
    let account = state
        .store
        .account(project, &body.resource, &body.account)
        .await?;
    let user = state.store.user_by_name(&body.user).await?;
    match role_in(&state, &admin.project, &user).await? {
        Some(ProjectRole::Admin | ProjectRole::Member) => {}
        Some(_) => {
            return Err(ApiError::conflict(format!(
                "{} is an auditor of project {}: auditors open no sessions; make them a member \
                 first (kms-pam project member add {} {} --role member)",
                user.name, admin.project.name, admin.project.name, user.name
            )))
        }
        None => {
            return Err(ApiError::conflict(format!(
                "{} is not a member of project {}; add them first (kms-pam project member add \
                 {} {} --role member)",
                user.name, admin.project.name, admin.project.name, user.name
            )))
        }
    }
    let max = body.max_duration_secs.unwrap_or(account.max_duration_secs);
    if max == 0 || max > account.max_duration_secs {
        return Err(ApiError::invalid(format!(
            "max_duration_secs must be between 1 and the account's maximum of {}s ({})",
            account.max_duration_secs,
            format_duration(std::time::Duration::from_secs(account.max_duration_secs))
        )));
    }
    let now = now();
    if let Some(until) = body.expires_at.filter(|until| *until <= now) {
        return Err(ApiError::invalid(format!(
            "expires_at {} is not in the future: a grant must expire later than now",
            format_rfc3339(until)
        )));
    }
    let grant = state
        .store
        .create_grant(NewGrant {
            project_id: project.to_owned(),
            account_id: account.id,
            user_id: user.id,
            max_duration_secs: max,
            expires_at: body.expires_at,
            now,
        })
        .await?;
    tracing::info!(
        by = %admin.user.name,
        project = %admin.project.name,
        grant = %grant.id,
        user = %grant.user,
        account = %format!("{}/{}", grant.resource, grant.account),
        expires_at = ?grant.expires_at.map(format_rfc3339),
        "grant created"
    );
    Ok((StatusCode::CREATED, Json(views::grant(&grant))))
}

/// `GET /v1/grants`: project administrators and auditors.
pub(crate) async fn list(
    State(state): State<AppState>,
    ProjectReader(reader): ProjectReader,
) -> Result<Json<Vec<Grant>>, ApiError> {
    let grants = state.store.grants(reader.project_id(), None).await?;
    Ok(Json(grants.iter().map(views::grant).collect()))
}

/// `DELETE /v1/grants/{id}`: the sessions opened under the grant end (cause `grant_deleted`).
pub(crate) async fn delete(
    State(state): State<AppState>,
    ProjectAdmin(admin): ProjectAdmin,
    ApiPath(IdPath { id }): ApiPath<IdPath>,
) -> Result<StatusCode, ApiError> {
    let grant = state.store.grant(admin.project_id(), &id).await?;
    state.store.delete_grant(admin.project_id(), &id).await?;
    let which = ActiveSessions {
        grant_id: Some(grant.id.clone()),
        ..ActiveSessions::default()
    };
    let ended = end_sessions(&state, which, EndCause::GrantDeleted, &admin.user.name).await?;
    tracing::info!(by = %admin.user.name, project = %admin.project.name, grant = %id,
        user = %grant.user, sessions_ended = ended, "grant deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/grants/{id}/revoke`: the grant stays listed as revoked, with who and why; the
/// sessions opened under it end (cause `grant_revoked`).
pub(crate) async fn revoke(
    State(state): State<AppState>,
    ProjectAdmin(admin): ProjectAdmin,
    ApiPath(IdPath { id }): ApiPath<IdPath>,
    ApiJson(body): ApiJson<RevokeGrant>,
) -> Result<Json<Grant>, ApiError> {
    let reason = body.reason.trim();
    if reason.is_empty() {
        return Err(ApiError::invalid(
            "a reason is required to revoke a grant (--reason TEXT)",
        ));
    }
    crate::server::edge::validate::text("reason", Some(reason))?;
    let grant = state
        .store
        .revoke_grant(admin.project_id(), &id, &admin.user.name, reason, now())
        .await?;
    let which = ActiveSessions {
        grant_id: Some(grant.id.clone()),
        ..ActiveSessions::default()
    };
    let ended = end_sessions(&state, which, EndCause::GrantRevoked, &admin.user.name).await?;
    tracing::info!(by = %admin.user.name, project = %admin.project.name, grant = %id,
        user = %grant.user, reason, sessions_ended = ended, "grant revoked");
    Ok(Json(views::grant(&grant)))
}
