//! `whoami` and user management (organisation admin). Taking access away is `revocation.rs`'s.

use axum::extract::State;
use axum::Json;
use http::StatusCode;

use super::auth::{AdminUser, Caller};
use super::error::{ApiError, ApiJson};
use super::state::{now, AppState};
use super::{validate, views};
use crate::kms::api::{
    CreateUser, CreatedUser, PrincipalKind, ProjectRole, User, WhoAmI, USER_TOKEN_PREFIX,
};
use crate::server::store::crypto::issue_token;
use crate::server::store::NewUser;

/// `GET /v1/whoami`.
pub(crate) async fn whoami(caller: Caller) -> Json<WhoAmI> {
    Json(match caller {
        Caller::User(user) => WhoAmI {
            name: user.name,
            kind: PrincipalKind::User,
            admin: user.admin,
        },
        Caller::Gateway(gateway) => WhoAmI {
            name: gateway.name,
            kind: PrincipalKind::Gateway,
            admin: false,
        },
    })
}

/// `POST /v1/users`: the answer is the only place the new token ever appears. A user who is not
/// an organisation administrator joins the project `default` as a member, so SPEC §3's commands
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
