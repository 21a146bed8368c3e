//! Taking access away, and making it cut (SPEC §2.9): disabling, enabling and deleting users,
//! rotating a user's token, revoking a gateway. Every revocation ends the sessions it affects
//! with [`end_sessions`], which records the cause and publishes the status change gateways
//! follow, so their tunnels and streams are cut within a second.

use axum::extract::State;
use axum::Json;
use http::StatusCode;

use super::auth::AdminUser;
use super::error::{ApiError, ApiPath};
use super::state::{now, AppState};
use super::views;
use crate::kms::api::{CreatedUser, Gateway, User, USER_TOKEN_PREFIX};
use crate::server::store::crypto::issue_token;
use crate::server::store::{ActiveSessions, EndedSessions, UserRecord};
use crate::session::EndCause;

/// Ends the active sessions `which` matches for `cause`, wakes the gateways, counts and logs
/// them. Returns how many ended.
pub(crate) async fn end_sessions(
    state: &AppState,
    which: ActiveSessions,
    cause: EndCause,
    by: &str,
) -> Result<usize, ApiError> {
    let ended = state.store.end_sessions(&which, cause, now()).await?;
    record_ended(state, &ended, cause, by).await;
    Ok(ended.ids.len())
}

/// Publishes, counts and logs sessions ended for `cause`, and signs the heads of those whose
/// gateway had already delivered its signed end (it stopped first): KMS signs a head when the
/// record completes, not later from whatever the database then says.
pub(crate) async fn record_ended(
    state: &AppState,
    ended: &EndedSessions,
    cause: EndCause,
    by: &str,
) {
    state.feed.publish(ended.seq);
    for id in &ended.ids {
        state.metrics.session_ended(cause);
        tracing::info!(session = %id, %cause, %by, "session ended");
    }
    super::audit_trail::seal_delivered(state, &ended.ids).await;
}

/// The user `name`, unless it is the caller: nobody locks themselves out by accident.
async fn other_user(
    state: &AppState,
    admin: &UserRecord,
    name: &str,
) -> Result<UserRecord, ApiError> {
    let user = state.store.user_by_name(name).await?;
    if user.id == admin.id {
        return Err(ApiError::conflict(
            "you cannot do this to your own user; ask another organisation administrator",
        ));
    }
    Ok(user)
}

/// `POST /v1/users/{name}/disable`: the token is refused from now on; the user's active
/// sessions end (cause `user_disabled`).
pub(crate) async fn disable(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<User>, ApiError> {
    let user = other_user(&state, &admin, &name).await?;
    let user = state.store.set_user_disabled(&user.id, Some(now())).await?;
    let ended = end_sessions(&state, of_user(&user), EndCause::UserDisabled, &admin.name).await?;
    tracing::info!(by = %admin.name, user = %user.name, sessions_ended = ended, "user disabled");
    Ok(Json(views::user(&user)))
}

/// `POST /v1/users/{name}/enable`: the same token works again.
pub(crate) async fn enable(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<User>, ApiError> {
    let user = state.store.user_by_name(&name).await?;
    let user = state.store.set_user_disabled(&user.id, None).await?;
    tracing::info!(by = %admin.name, user = %user.name, "user enabled");
    Ok(Json(views::user(&user)))
}

/// `DELETE /v1/users/{name}`: sessions end (cause `user_deleted`) and stay as history.
pub(crate) async fn delete(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let user = other_user(&state, &admin, &name).await?;
    // The token first, so no new session can start between the two steps.
    state.store.delete_user(&user.id, now()).await?;
    let ended = end_sessions(&state, of_user(&user), EndCause::UserDeleted, &admin.name).await?;
    tracing::info!(by = %admin.name, user = %user.name, sessions_ended = ended, "user deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/users/{name}/token`: a new token, shown only in this answer. The old one stops
/// working at once and the sessions opened with it end (cause `token_revoked`): their client
/// could no longer check on them or end them.
pub(crate) async fn rotate_token(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<CreatedUser>, ApiError> {
    let user = state.store.user_by_name(&name).await?;
    let (token, hash) = issue_token(USER_TOKEN_PREFIX)?;
    state.store.rotate_user_token(&user.id, &hash).await?;
    let ended = end_sessions(&state, of_user(&user), EndCause::TokenRevoked, &admin.name).await?;
    tracing::info!(by = %admin.name, user = %user.name, sessions_ended = ended, "user token rotated");
    Ok(Json(CreatedUser {
        user: views::user(&user),
        token,
    }))
}

/// `POST /v1/gateways/{name}/revoke`: its token is refused (401), KMS opens no session on it,
/// and its active sessions end (cause `gateway_revoked`). A new `gateway create NAME` hands out
/// an enrollment token to bring it back.
pub(crate) async fn revoke_gateway(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Gateway>, ApiError> {
    let gateway = state.store.gateway_by_name(&name).await?;
    let gateway = state.store.revoke_gateway(&gateway.id, now()).await?;
    let which = ActiveSessions {
        gateway_id: Some(gateway.id.clone()),
        ..ActiveSessions::default()
    };
    let ended = end_sessions(&state, which, EndCause::GatewayRevoked, &admin.name).await?;
    tracing::warn!(by = %admin.name, gateway = %gateway.name, sessions_ended = ended, "gateway revoked");
    Ok(Json(views::gateway(&gateway, now())))
}

fn of_user(user: &UserRecord) -> ActiveSessions {
    ActiveSessions {
        user_id: Some(user.id.clone()),
        ..ActiveSessions::default()
    }
}
