//! PAM accounts: a service-account token on a resource. The token goes in once (sealed by the
//! store) and comes out only to the gateway a session is bound to.

use std::time::Duration;

use axum::extract::State;
use axum::Json;
use http::StatusCode;
use serde::Deserialize;

use crate::kms::api::{Account, CreateAccount, UpdateAccount};
use crate::server::edge::callers::InProject;
use crate::server::edge::error::ApiError;
use crate::server::edge::extract::{ApiJson, ApiPath, ApiQuery};
use crate::server::edge::paths::AccountPath;
use crate::server::edge::rights::ProjectAdmin;
use crate::server::edge::state::{now, AppState};
use crate::server::edge::{validate, views};
use crate::server::lifecycle::ending::end_sessions;
use crate::server::store::{AccountChange, ActiveSessions, NewAccount};
use crate::session::EndCause;

/// `POST /v1/resources/{resource}/accounts`.
pub(crate) async fn create(
    State(state): State<AppState>,
    ProjectAdmin(admin): ProjectAdmin,
    ApiPath(AccountPath { resource, .. }): ApiPath<AccountPath>,
    ApiJson(body): ApiJson<CreateAccount>,
) -> Result<(StatusCode, Json<Account>), ApiError> {
    // The body's token is a `Secret` from the moment it is read: zeroized on every path out.
    let token = body.token;
    validate::name("account", &body.name)?;
    validate::text("description", body.description.as_deref())?;
    let max = body
        .max_duration_secs
        .unwrap_or(validate::DEFAULT_ACCOUNT_DURATION.as_secs());
    validate::max_duration(max)?;
    let token = validate::account_token(&token)?;
    let resource = state.store.resource(admin.project_id(), &resource).await?;
    let account = state
        .store
        .create_account(NewAccount {
            project_id: admin.project_id().to_owned(),
            resource_id: resource.id,
            name: body.name,
            description: body.description,
            max_duration_secs: max,
            token,
            now: now(),
        })
        .await?;
    tracing::info!(
        by = %admin.user.name,
        project = %admin.project.name,
        account = %format!("{}/{}", account.resource, account.name),
        max = %crate::time::format_duration(Duration::from_secs(max)),
        "account created"
    );
    Ok((StatusCode::CREATED, Json(views::account(&account))))
}

/// `PATCH /v1/resources/{resource}/accounts/{account}`: replaces the fields given; without a
/// token the sealed one stays. Sessions already open keep the expiry they were given.
pub(crate) async fn update(
    State(state): State<AppState>,
    ProjectAdmin(admin): ProjectAdmin,
    ApiPath(path): ApiPath<AccountPath>,
    ApiJson(body): ApiJson<UpdateAccount>,
) -> Result<Json<Account>, ApiError> {
    let token = body
        .token
        .as_ref()
        .map(validate::account_token)
        .transpose()?;
    let (resource, name) = (path.resource, path.account.unwrap_or_default());
    let account = state
        .store
        .account(admin.project_id(), &resource, &name)
        .await?;
    let description = match body.description {
        Some(d) if d.trim().is_empty() => None,
        Some(d) => Some(d),
        None => account.description.clone(),
    };
    validate::text("description", description.as_deref())?;
    let max = body.max_duration_secs.unwrap_or(account.max_duration_secs);
    validate::max_duration(max)?;
    let rotated = token.is_some();
    let updated = state
        .store
        .update_account(AccountChange {
            id: account.id,
            description,
            max_duration_secs: max,
            token,
        })
        .await?;
    tracing::info!(
        by = %admin.user.name,
        project = %admin.project.name,
        account = %format!("{}/{}", updated.resource, updated.name),
        max = %crate::time::format_duration(Duration::from_secs(max)),
        token = if rotated { "replaced" } else { "unchanged" },
        "account updated"
    );
    Ok(Json(views::account(&updated)))
}

/// Query of `GET /v1/accounts`.
#[derive(Debug, Deserialize)]
pub(crate) struct AccountsQuery {
    resource: Option<String>,
}

/// `GET /v1/accounts?resource=R`: members see only accounts they hold a grant for.
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: InProject,
    ApiQuery(query): ApiQuery<AccountsQuery>,
) -> Result<Json<Vec<Account>>, ApiError> {
    let project = caller.project_id();
    let mut accounts = state
        .store
        .accounts(project, query.resource.as_deref())
        .await?;
    if !caller.reads_every_session() {
        let granted = state.store.grants(project, Some(&caller.user.id)).await?;
        accounts.retain(|a| granted.iter().any(|g| g.account_id == a.id));
    }
    Ok(Json(accounts.iter().map(views::account).collect()))
}

/// `DELETE /v1/resources/{resource}/accounts/{account}`: grants go too; active sessions are
/// terminated first (cause `account_deleted`), then kept as history.
pub(crate) async fn delete(
    State(state): State<AppState>,
    ProjectAdmin(admin): ProjectAdmin,
    ApiPath(path): ApiPath<AccountPath>,
) -> Result<StatusCode, ApiError> {
    let (resource, name) = (path.resource, path.account.unwrap_or_default());
    let project = admin.project_id();
    let account = state.store.account(project, &resource, &name).await?;
    let which = ActiveSessions {
        account_id: Some(account.id.clone()),
        ..ActiveSessions::default()
    };
    end_sessions(&state, which, EndCause::AccountDeleted, &admin.user.name).await?;
    state
        .store
        .delete_account(project, &resource, &name)
        .await?;
    tracing::info!(by = %admin.user.name, project = %admin.project.name,
        account = %format!("{resource}/{name}"), "account deleted");
    Ok(StatusCode::NO_CONTENT)
}
