//! `whoami` and user management (organisation admin), and taking a user's access away, and
//! making it cut (security invariant 9, docs/security.md): disabling, enabling and deleting users, rotating a user's token.
//! Every revocation ends the sessions it affects through the lifecycle
//! ([`end_sessions`]), which records the cause and publishes the status change gateways follow,
//! so their tunnels and streams are cut within a second.

use axum::extract::State;
use axum::Json;
use http::StatusCode;

use crate::kms::api::{
    CreateUser, CreatedUser, PrincipalKind, ProjectRole, User, WhoAmI, USER_TOKEN_PREFIX,
};
use crate::server::edge::auth::{AdminUser, Caller};
use crate::server::edge::error::ApiError;
use crate::server::edge::extract::{ApiJson, ApiPath};
use crate::server::edge::state::{now, AppState};
use crate::server::edge::{validate, views};
use crate::server::lifecycle::ending::end_sessions;
use crate::server::sso::credentials::token_person;
use crate::server::store::crypto::issue_token;
use crate::server::store::{ActiveSessions, NewUser, UserRecord};
use crate::session::EndCause;

/// `GET /v1/whoami`.
/// After single sign-on the answer names the person as their provider knows them.
pub(crate) async fn whoami(
    State(state): State<AppState>,
    caller: Caller,
    headers: http::HeaderMap,
) -> Result<Json<WhoAmI>, ApiError> {
    Ok(Json(match caller {
        Caller::User(user) => {
            let bearer = crate::net::bearer::token(&headers)
                .and_then(|token| std::str::from_utf8(token).ok())
                .unwrap_or_default();
            let identity = token_person(&state, bearer)
                .await?
                .map(|(_, person)| person);
            WhoAmI {
                name: user.name,
                kind: PrincipalKind::User,
                admin: user.admin,
                identity,
            }
        }
        Caller::Gateway(gateway) => WhoAmI {
            name: gateway.name,
            kind: PrincipalKind::Gateway,
            admin: false,
            identity: None,
        },
    }))
}

/// `POST /v1/users`: the answer is the only place the new token ever appears. A user who is not
/// an organisation administrator joins the project `default` as a member, so the documented commands
/// work for them as they always did (remove them from it to keep them out).
pub(crate) async fn create(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    ApiJson(body): ApiJson<CreateUser>,
) -> Result<(StatusCode, Json<CreatedUser>), ApiError> {
    validate::name("user", &body.name)?;
    let (token, hash) = issue_token(USER_TOKEN_PREFIX)?;
    let now = now();
    let user = state
        .store
        .create_user(NewUser {
            name: body.name,
            admin: body.admin,
            token: hash,
            now,
        })
        .await?;
    if !user.admin {
        let default = &state.default_project.id;
        state
            .store
            .set_member(default, &user.id, ProjectRole::Member, now)
            .await?;
    }
    tracing::info!(by = %admin.name, user = %user.name, admin = user.admin, "user created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedUser {
            user: views::user(&user),
            token,
        }),
    ))
}

/// `GET /v1/users`.
pub(crate) async fn list(
    State(state): State<AppState>,
    AdminUser(_): AdminUser,
) -> Result<Json<Vec<User>>, ApiError> {
    let users = state.store.users().await?;
    Ok(Json(users.iter().map(views::user).collect()))
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

fn of_user(user: &UserRecord) -> ActiveSessions {
    ActiveSessions {
        user_id: Some(user.id.clone()),
        ..ActiveSessions::default()
    }
}
