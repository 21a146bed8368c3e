//! Sessions as users see them: request one (the certificate is signed from the CLI's CSR), list,
//! show, end; project administrators also terminate. Members see only their own sessions;
//! administrators and auditors every session of the project. Somebody else's session answers
//! 404, exactly like one that does not exist.

use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::Json;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;

use crate::kms::api::{CreateSession, CreatedSession, GatewayStatus, ProjectRole, SessionView};
use crate::server::edge::callers::{project_not_found, role_in, InProject, SessionCaller};
use crate::server::edge::error::ApiError;
use crate::server::edge::extract::{ApiJson, ApiPath, ApiQuery};
use crate::server::edge::origin::RequestOrigin;
use crate::server::edge::paths::IdPath;
use crate::server::edge::rights::ProjectAdmin;
use crate::server::edge::state::{now, AppState};
use crate::server::edge::{gateway_scope, validate, views};
use crate::server::lifecycle::ending::{end_session, terminate as terminate_session};
use crate::server::lifecycle::keys::bind_session_key;
use crate::server::lifecycle::visibility::{visible_session, whose_sessions};
use crate::server::sso::credentials::token_person;
use crate::server::store::{
    AccountRecord, GatewayRecord, GrantRecord, NewSessionRecord, ResourceRecord, SessionFilter,
    StoreError, TokenHash,
};
use crate::session::{EndCause, SessionId, SessionStatus};
use crate::time::{format_duration, format_rfc3339};
use crate::tls::SessionCertSpec;

/// `POST /v1/sessions`: administrators need no grant, members need one, auditors may not.
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: InProject,
    origin: RequestOrigin,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateSession>,
) -> Result<(StatusCode, Json<CreatedSession>), ApiError> {
    // The token `caller` was authenticated with, so a rotation racing this request refuses it.
    let bearer =
        crate::net::bearer::token(&headers).and_then(|token| std::str::from_utf8(token).ok());
    let token = bearer.map(TokenHash::of);
    // After single sign-on, the session names the person as their provider knows them.
    let identity = match bearer {
        Some(bearer) => token_person(&state, bearer)
            .await?
            .map(|(_, identity)| identity),
        None => None,
    };
    validate::text("reason", body.reason.as_deref())?;
    let (account, max, grant) =
        allowed_account(&state, &caller, &body.resource, &body.account).await?;
    check_duration(body.duration_secs, max, &account)?;
    let resource = state.store.resource_by_id(&account.resource_id).await?;
    let gateway = state.store.gateway_by_id(&resource.gateway_id).await?;
    let address = usable_gateway(&gateway, &resource, now())?;
    // The gateway may have been taken away from the project, or its allow-list narrowed,
    // since the resource was created: no new session then (open ones run to their end).
    if !state
        .store
        .gateway_serves(&gateway.id, caller.project_id())
        .await?
    {
        return Err(gateway_scope::not_assigned(&gateway, &caller.project.name));
    }
    if let Some(why) = gateway_scope::outside_allow_list(&gateway, &resource.url) {
        return Err(ApiError::forbidden(why));
    }
    // How the CLI reaches the gateway, as its last heartbeat said (older gateways: directly).
    let (direct, relays) = (gateway.reach.direct, views::session_relays(&gateway.reach));
    let created_at = now();
    // A session opened under a grant with an expiry ends with the grant at the latest.
    let requested = created_at + Duration::from_secs(body.duration_secs);
    let until = grant.as_ref().and_then(|grant| grant.expires_at);
    let expires_at = until.map_or(requested, |until| requested.min(until));
    let grant_id = grant.map(|grant| grant.id);
    let id = SessionId::new_random();
    let key = bind_session_key(&state, &id, &gateway.id).await?;
    let certificate = state.ca.sign_session_csr(
        &body.csr,
        &SessionCertSpec {
            session_id: id.to_string(),
            gateway: gateway.name.clone(),
            user: caller.user.name.clone(),
            not_before: created_at,
            not_after: expires_at,
        },
    )?;
    let stored = state
        .store
        .create_session(NewSessionRecord {
            id,
            project_id: caller.project_id().to_owned(),
            user: caller.user.clone(),
            account,
            gateway,
            grant_id,
            token: token.clone(),
            identity,
            reason: body.reason.clone(),
            created_at,
            expires_at,
            client_address: origin.address,
            user_agent: origin.user_agent,
            key,
        })
        .await;
    let update = match stored {
        Ok(update) => update,
        // A revocation committed between the checks above and the insert, which checks again
        // and stores nothing: answer as the checks answer now.
        Err(StoreError::Conflict(changed)) => {
            let refusal = refusal_now(&state, &caller, token.as_ref(), &body).await;
            return Err(refusal.unwrap_or_else(|| ApiError::conflict(changed)));
        }
        Err(e) => return Err(e.into()),
    };
    state.feed.publish(update.seq);
    let session = &update.record.session;
    tracing::info!(
        session = %session.id, user = %session.user, project = %caller.project.name,
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
            direct,
            relays,
        }),
    ))
}

/// Why `caller` may not open the session `body` asks for any more, asked again after the store
/// refused to record it: their token no longer works (401), their role or grant no longer
/// allows it (403/404, as [`allowed_account`] answers), or the gateway was revoked (409).
async fn refusal_now(
    state: &AppState,
    caller: &InProject,
    token: Option<&TokenHash>,
    body: &CreateSession,
) -> Option<ApiError> {
    let now = match token {
        Some(token) => match state.store.user_by_token(token).await {
            // Not an API token: a single sign-on access token, if still live.
            Err(StoreError::NotFound(_)) => state
                .store
                .sso_access(token, crate::server::edge::state::now())
                .await
                .map(|(user, _)| user),
            other => other,
        },
        None => state.store.user_by_name(&caller.user.name).await,
    };
    let user = match now {
        Ok(user) if user.id == caller.user.id && !user.disabled => user,
        Ok(_) | Err(StoreError::NotFound(_)) => {
            return Some(ApiError::unauthenticated(format!(
                "user {} was disabled or deleted, or this token was rotated away",
                caller.user.name
            )))
        }
        Err(e) => return Some(e.into()),
    };
    let role = match role_in(state, &caller.project, &user).await {
        Ok(Some(role)) => role,
        Ok(None) => return Some(project_not_found(&caller.project.name)),
        Err(e) => return Some(e),
    };
    let now = InProject {
        user,
        project: caller.project.clone(),
        role,
    };
    let account = match allowed_account(state, &now, &body.resource, &body.account).await {
        Ok((account, _, _)) => account,
        Err(refused) => return Some(refused),
    };
    let resource = state
        .store
        .resource_by_id(&account.resource_id)
        .await
        .ok()?;
    let gateway = state.store.gateway_by_id(&resource.gateway_id).await.ok()?;
    usable_gateway(&gateway, &resource, crate::server::edge::state::now()).err()
}

/// The address CLIs dial, if the gateway can take sessions: enrolled, not revoked and online
/// (a heartbeat, enrollment included, within [`views::ONLINE_WINDOW`]).
fn usable_gateway(
    gateway: &GatewayRecord,
    resource: &ResourceRecord,
    now: SystemTime,
) -> Result<String, ApiError> {
    if gateway.revoked {
        return Err(ApiError::conflict(format!(
            "gateway {} of resource {} was revoked; an organisation administrator must enroll it \
             again (kms-pam gateway create {})",
            gateway.name, resource.name, gateway.name
        )));
    }
    let address = match (&gateway.address, gateway.enrolled) {
        (Some(address), true) => address.clone(),
        _ => {
            return Err(ApiError::conflict(format!(
                "gateway {} of resource {} has not enrolled yet; start kms-pam-gateway with its \
                 enrollment token first",
                gateway.name, resource.name
            )))
        }
    };
    if views::gateway_status(gateway, now) == GatewayStatus::Offline {
        return Err(ApiError::conflict(offline(gateway, resource, now)));
    }
    Ok(address)
}

/// Why no session opens on `gateway`, which stopped sending heartbeats.
fn offline(gateway: &GatewayRecord, resource: &ResourceRecord, now: SystemTime) -> String {
    let since = match gateway.last_heartbeat {
        Some(beat) => {
            let ago = now.duration_since(beat).unwrap_or_default().as_secs();
            format!(
                " since {} (its last heartbeat, {} ago)",
                format_rfc3339(beat),
                format_duration(Duration::from_secs(ago))
            )
        }
        None => String::new(),
    };
    format!(
        "gateway {} of resource {} is offline{since}; no session can open through it until it \
         sends a heartbeat again: check that kms-pam-gateway is running and reaches KMS \
         (kms-pam gateway list shows its status)",
        gateway.name, resource.name
    )
}

/// The account, the longest session the caller may open on it, and the grant that allows it
/// (none for administrators). Members without a grant are refused the same way whether or not
/// the account exists; an expired or revoked grant is refused saying so.
async fn allowed_account(
    state: &AppState,
    caller: &InProject,
    resource: &str,
    account: &str,
) -> Result<(AccountRecord, u64, Option<GrantRecord>), ApiError> {
    if caller.role == ProjectRole::Auditor {
        return Err(caller.refused("opening sessions: auditors read sessions, they open none"));
    }
    let found = state
        .store
        .account(caller.project_id(), resource, account)
        .await;
    if caller.is_admin() {
        let account = found?;
        let max = account.max_duration_secs;
        return Ok((account, max, None));
    }
    let no_grant = || {
        ApiError::forbidden(format!(
            "you hold no grant for {resource}/{account} in project {}; ask a project \
             administrator for one",
            caller.project.name
        ))
    };
    let account = match found {
        Ok(account) => account,
        Err(StoreError::NotFound(_)) => return Err(no_grant()),
        Err(e) => return Err(e.into()),
    };
    let grant = state
        .store
        .grant_for(&account.id, &caller.user.id)
        .await?
        .ok_or_else(no_grant)?;
    let which = format!("your grant for {resource}/{}", account.name);
    let again = "ask a project administrator for a new one";
    if let Some(revoked) = &grant.revoked {
        return Err(ApiError::forbidden(format!(
            "{which} was revoked by {} at {} ({}); {again}",
            revoked.by,
            format_rfc3339(revoked.at),
            revoked.reason
        )));
    }
    if let Some(until) = grant.expires_at.filter(|until| *until <= now()) {
        return Err(ApiError::forbidden(format!(
            "{which} expired at {}; {again}",
            format_rfc3339(until)
        )));
    }
    let max = account.max_duration_secs.min(grant.max_duration_secs);
    Ok((account, max, Some(grant)))
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
    caller: InProject,
    ApiQuery(query): ApiQuery<SessionsQuery>,
) -> Result<Json<Vec<SessionView>>, ApiError> {
    let mut filter = SessionFilter {
        active_only: query.active,
        user: None,
        resource: query.resource,
    };
    match whose_sessions(&state, &caller, query.user).await? {
        Some(user) => filter.user = user,
        None => return Ok(Json(Vec::new())),
    }
    let now = now();
    let records = state.store.sessions(caller.project_id(), &filter).await?;
    let views = records.iter().map(|r| views::session(r, now));
    // A session past its expiry but not yet marked is not active any more.
    let views = views.filter(|v| !query.active || v.session.status == SessionStatus::Active);
    Ok(Json(views.collect()))
}

/// `POST /v1/sessions/{id}/end`: its owner, or a project administrator.
pub(crate) async fn end(
    State(state): State<AppState>,
    caller: SessionCaller,
    ApiPath(IdPath { id }): ApiPath<IdPath>,
) -> Result<Json<SessionView>, ApiError> {
    let record = visible_session(&state, &caller, &id).await?;
    let owner = record.user_id == caller.user.id;
    if !owner && caller.role != Some(ProjectRole::Admin) {
        return Err(ApiError::forbidden(
            "auditors read sessions; only their owner or a project administrator ends them",
        ));
    }
    let cause = if owner {
        EndCause::User
    } else {
        EndCause::Termination
    };
    let view = end_session(&state, &record.session.id, cause, &caller.user.name).await?;
    Ok(Json(view))
}

/// `POST /v1/sessions/{id}/terminate`: project administrators.
pub(crate) async fn terminate(
    State(state): State<AppState>,
    ProjectAdmin(admin): ProjectAdmin,
    ApiPath(IdPath { id }): ApiPath<IdPath>,
) -> Result<Json<SessionView>, ApiError> {
    Ok(Json(terminate_session(&state, &admin, &id).await?))
}
