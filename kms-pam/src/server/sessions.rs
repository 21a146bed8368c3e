//! Sessions as users see them: request one (the certificate is signed from the CLI's CSR), list,
//! show, end; administrators also terminate. Members only ever see their own sessions: another
//! user's session answers 404, exactly like one that does not exist.

use std::time::Duration;

use axum::extract::State;
use axum::Json;
use http::StatusCode;
use serde::Deserialize;

use super::auth::{AdminUser, AnyUser};
use super::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use super::state::{now, AppState};
use super::{validate, views};
use crate::kms::api::{CreateSession, CreatedSession, SessionView};
use crate::server::store::{
    AccountRecord, NewSessionRecord, SessionFilter, SessionRecord, StoreError, UserRecord,
};
use crate::session::{EndCause, SessionId, SessionStatus};
use crate::time::format_duration;
use crate::tls::SessionCertSpec;

/// `POST /v1/sessions`.
pub(crate) async fn create(
    State(state): State<AppState>,
    AnyUser(user): AnyUser,
    ApiJson(body): ApiJson<CreateSession>,
) -> Result<(StatusCode, Json<CreatedSession>), ApiError> {
    validate::text("reason", body.reason.as_deref())?;
    let (account, max) = allowed_account(&state, &user, &body.resource, &body.account).await?;
    check_duration(body.duration_secs, max, &account)?;
    let resource = state.store.resource_by_id(&account.resource_id).await?;
    let gateway = state.store.gateway_by_id(&resource.gateway_id).await?;
    let address = match (&gateway.address, gateway.enrolled) {
        (Some(address), true) => address.clone(),
        _ => {
            return Err(ApiError::conflict(format!(
                "gateway {} of resource {} has not enrolled yet; start kms-pam-gateway with \
                 its enrollment token first",
                gateway.name, resource.name
            )))
        }
    };
    let created_at = now();
    let expires_at = created_at + Duration::from_secs(body.duration_secs);
    let id = SessionId::new_random();
    let certificate = state.ca.sign_session_csr(
        &body.csr,
        &SessionCertSpec {
            session_id: id.to_string(),
            gateway: gateway.name.clone(),
            user: user.name.clone(),
            not_before: created_at,
            not_after: expires_at,
        },
    )?;
    let update = state
        .store
        .create_session(NewSessionRecord {
            id,
            project_id: state.project_id().to_owned(),
            user,
            account,
            gateway,
            reason: body.reason,
            created_at,
            expires_at,
        })
        .await?;
    state.feed.publish(update.seq);
    let session = &update.record.session;
    tracing::info!(
        session = %session.id, user = %session.user,
        account = %format!("{}/{}", session.resource, session.account),
        duration = %format_duration(Duration::from_secs(body.duration_secs)),
        "session opened"
    );
    Ok((
        StatusCode::CREATED,
        Json(CreatedSession {
            session: views::session(&update.record, created_at),
            certificate,
            ca_certificate: state.ca.cert_pem().to_owned(),
            gateway_address: address,
        }),
    ))
}

/// The account and the longest session `user` may open on it. Members without a grant are
/// refused the same way whether or not the account exists.
async fn allowed_account(
    state: &AppState,
    user: &UserRecord,
    resource: &str,
    account: &str,
) -> Result<(AccountRecord, u64), ApiError> {
    let found = state
        .store
        .account(state.project_id(), resource, account)
        .await;
    if user.admin {
        let account = found?;
        let max = account.max_duration_secs;
        return Ok((account, max));
    }
    let no_grant = || {
        ApiError::forbidden(format!(
            "you hold no grant for {resource}/{account}; ask an administrator for one"
        ))
    };
    let account = match found {
        Ok(account) => account,
        Err(StoreError::NotFound(_)) => return Err(no_grant()),
        Err(e) => return Err(e.into()),
    };
    let grant = state
        .store
        .grant_for(&account.id, &user.id)
        .await?
        .ok_or_else(no_grant)?;
    let max = account.max_duration_secs.min(grant.max_duration_secs);
    Ok((account, max))
}

/// Refuses (rather than shortens) a duration above the maximum, naming the maximum.
fn check_duration(secs: u64, max: u64, account: &AccountRecord) -> Result<(), ApiError> {
    if secs == 0 {
        return Err(ApiError::invalid("duration_secs must be greater than zero"));
    }
    if secs > max {
        return Err(ApiError::invalid(format!(
            "requested duration {} exceeds the maximum of {} ({max}s) for {}/{}",
            format_duration(Duration::from_secs(secs)),
            format_duration(Duration::from_secs(max)),
            account.resource,
            account.name
        )));
    }
    Ok(())
}

/// Query of `GET /v1/sessions`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct SessionsQuery {
    #[serde(default)]
    active: bool,
    user: Option<String>,
    resource: Option<String>,
}

/// `GET /v1/sessions?active=true&user=U&resource=R`: members get their own only.
pub(crate) async fn list(
    State(state): State<AppState>,
    AnyUser(user): AnyUser,
    ApiQuery(query): ApiQuery<SessionsQuery>,
) -> Result<Json<Vec<SessionView>>, ApiError> {
    let mut filter = SessionFilter {
        active_only: query.active,
        user: query.user,
        resource: query.resource,
    };
    if !user.admin {
        if filter
            .user
            .as_ref()
            .is_some_and(|asked| *asked != user.name)
        {
            return Ok(Json(Vec::new()));
        }
        filter.user = Some(user.name.clone());
    }
    let now = now();
    let records = state.store.sessions(state.project_id(), &filter).await?;
    let views = records.iter().map(|r| views::session(r, now));
    // A session past its expiry but not yet marked is not active any more.
    let views = views.filter(|v| !query.active || v.session.status == SessionStatus::Active);
    Ok(Json(views.collect()))
}

/// `POST /v1/sessions/{id}/end`: owner or admin.
pub(crate) async fn end(
    State(state): State<AppState>,
    AnyUser(user): AnyUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<SessionView>, ApiError> {
    let record = visible_session(&state, &user, &id).await?;
    finish(&state, &record.session.id, EndCause::User, &user.name).await
}

/// `POST /v1/sessions/{id}/terminate`: admin only.
pub(crate) async fn terminate(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<SessionView>, ApiError> {
    finish(
        &state,
        &SessionId::new(id),
        EndCause::Termination,
        &admin.name,
    )
    .await
}

async fn finish(
    state: &AppState,
    id: &SessionId,
    cause: EndCause,
    by: &str,
) -> Result<Json<SessionView>, ApiError> {
    let now = now();
    let update = state.store.end_session(id, cause, now).await?;
    state.feed.publish(update.seq);
    if update.seq.is_some() {
        let status = update.record.session.status;
        tracing::info!(session = %id, %by, %status, "session ended");
    }
    Ok(Json(views::session(&update.record, now)))
}

/// The session, if `user` may see it (their own, or any for an administrator).
pub(super) async fn visible_session(
    state: &AppState,
    user: &UserRecord,
    id: &str,
) -> Result<SessionRecord, ApiError> {
    let not_found = || ApiError::not_found(format!("session {id} not found"));
    let record = match state.store.session(&SessionId::new(id)).await {
        Ok(record) => record,
        Err(StoreError::NotFound(_)) => return Err(not_found()),
        Err(e) => return Err(e.into()),
    };
    if record.project_id != state.project_id() || !(user.admin || record.user_id == user.id) {
        return Err(not_found());
    }
    Ok(record)
}

/// Terminates the active sessions matching `filter` and `keep`, e.g. before their account is
/// deleted, so their gateways drop them at once.
pub(crate) async fn terminate_active(
    state: &AppState,
    filter: &SessionFilter,
    keep: impl Fn(&SessionRecord) -> bool,
) -> Result<(), ApiError> {
    let records = state.store.sessions(state.project_id(), filter).await?;
    let now = now();
    for record in records.iter().filter(|r| keep(r)) {
        let update = state
            .store
            .end_session(&record.session.id, EndCause::Termination, now)
            .await?;
        state.feed.publish(update.seq);
    }
    Ok(())
}
