//! Gateway management and enrollment, and revoking a gateway (its sessions end).
//!
//! Gateways belong to the organisation: one may serve resources of several projects.
//!
//! `POST /v1/gateways` hands out a one-time enrollment token valid for an hour; for a gateway
//! that was revoked it hands out a new one, with which the gateway (a new instance of it, with a
//! new key) enrolls again and keeps its resources. The gateway
//! enrolls with it: KMS signs the gateway's CSR (its key never leaves the gateway) for the host
//! it announced, issues its API token and spends the enrollment token, all or nothing.

use std::time::Duration;

use axum::extract::State;
use axum::Json;
use http::StatusCode;

use crate::kms::api::{
    AssignGateway, CreateGateway, CreatedGateway, EnrollGateway, EnrolledGateway, Gateway,
    UpdateGateway, DEFAULT_PROJECT, ENROLLMENT_TOKEN_PREFIX, GATEWAY_TOKEN_PREFIX,
};
use crate::server::edge::auth::{AdminUser, AnyUser};
use crate::server::edge::error::ApiError;
use crate::server::edge::extract::{ApiJson, ApiPath};
use crate::server::edge::refusals::Attempt;
use crate::server::edge::state::{now, AppState};
use crate::server::edge::{gateway_scope, validate, views};
use crate::server::lifecycle::ending::end_sessions;
use crate::server::lifecycle::keys::endorse;
use crate::server::store::crypto::issue_token;
use crate::server::store::{
    ActiveSessions, Enrollment, GatewayRecord, NewGateway, ProjectRecord, StoreError, TokenHash,
    UserRecord,
};
use crate::session::EndCause;

/// How long an enrollment token works.
pub(crate) const ENROLLMENT_VALIDITY: Duration = Duration::from_secs(3600);
/// Lifetime of an enrolled gateway's server certificate.
pub(crate) const GATEWAY_CERT_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);

/// `POST /v1/gateways`.
pub(crate) async fn create(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    ApiJson(body): ApiJson<CreateGateway>,
) -> Result<(StatusCode, Json<CreatedGateway>), ApiError> {
    validate::name("gateway", &body.name)?;
    let mut project_ids = Vec::new();
    let named = if body.projects.is_empty() {
        vec![DEFAULT_PROJECT.to_owned()]
    } else {
        body.projects.clone()
    };
    for name in &named {
        project_ids.push(project(&state, name).await?.id);
    }
    let (token, hash) = issue_token(ENROLLMENT_TOKEN_PREFIX)?;
    let now = now();
    let expires_at = now + ENROLLMENT_VALIDITY;
    let gateway = match state.store.gateway_by_name(&body.name).await {
        Ok(revoked) if revoked.revoked => {
            state
                .store
                .renew_enrollment(&revoked.id, &hash, expires_at, now)
                .await?;
            if !body.projects.is_empty() {
                for project_id in &project_ids {
                    state
                        .store
                        .assign_gateway(&revoked.id, project_id, now)
                        .await?;
                }
            }
            tracing::info!(by = %admin.name, gateway = %revoked.name,
                "new enrollment token for a revoked gateway");
            revoked
        }
        Ok(_) => {
            return Err(ApiError::conflict(format!(
                "gateway {} already exists",
                body.name
            )))
        }
        Err(StoreError::NotFound(_)) => {
            let gateway = state
                .store
                .create_gateway(NewGateway {
                    name: body.name,
                    enrollment: hash,
                    enrollment_expires_at: expires_at,
                    project_ids,
                    now,
                })
                .await?;
            tracing::info!(by = %admin.name, gateway = %gateway.name, "gateway created");
            gateway
        }
        Err(e) => return Err(e.into()),
    };
    let view = shown(&state, &admin, vec![gateway]).await?.remove(0);
    Ok((
        StatusCode::CREATED,
        Json(CreatedGateway {
            gateway: view,
            enrollment_token: token,
            expires_at,
        }),
    ))
}

/// `GET /v1/gateways`.
pub(crate) async fn list(
    State(state): State<AppState>,
    AnyUser(user): AnyUser,
) -> Result<Json<Vec<Gateway>>, ApiError> {
    let gateways = state.store.gateways().await?;
    Ok(Json(shown(&state, &user, gateways).await?))
}

/// `GET /v1/gateways/{name}`.
pub(crate) async fn show(
    State(state): State<AppState>,
    AnyUser(user): AnyUser,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Gateway>, ApiError> {
    let gateway = state.store.gateway_by_name(&name).await?;
    Ok(Json(shown(&state, &user, vec![gateway]).await?.remove(0)))
}

/// `PATCH /v1/gateways/{name}`: replaces the allow-list of resource URL hosts. Resources
/// already outside it stay, but get no credential (and no new session) until it lets them in.
pub(crate) async fn update(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateGateway>,
) -> Result<Json<Gateway>, ApiError> {
    let Some(patterns) = body.allowed_url_hosts else {
        return Err(ApiError::invalid(
            "nothing to change: give allowed_url_hosts (an empty list removes the limit)",
        ));
    };
    let patterns = gateway_scope::normalise(&patterns)?;
    let gateway = state.store.gateway_by_name(&name).await?;
    let gateway = state
        .store
        .set_gateway_allow_list(&gateway.id, &patterns)
        .await?;
    tracing::info!(by = %admin.name, gateway = %gateway.name, allowed_url_hosts = ?patterns,
        "gateway allow-list changed");
    Ok(Json(shown(&state, &admin, vec![gateway]).await?.remove(0)))
}

/// `POST /v1/gateways/{name}/projects`: lets a project's resources use the gateway.
pub(crate) async fn assign(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<AssignGateway>,
) -> Result<Json<Gateway>, ApiError> {
    let gateway = state.store.gateway_by_name(&name).await?;
    let project = project(&state, &body.project).await?;
    state
        .store
        .assign_gateway(&gateway.id, &project.id, now())
        .await?;
    tracing::info!(by = %admin.name, gateway = %gateway.name, project = %project.name,
        "gateway assigned to project");
    Ok(Json(shown(&state, &admin, vec![gateway]).await?.remove(0)))
}

/// `DELETE /v1/gateways/{name}/projects/{project}`: the project's resources on it get no new
/// session and none can be created there; sessions already open run to their end.
pub(crate) async fn unassign(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    ApiPath((name, project_name)): ApiPath<(String, String)>,
) -> Result<Json<Gateway>, ApiError> {
    let gateway = state.store.gateway_by_name(&name).await?;
    let project = project(&state, &project_name).await?;
    state
        .store
        .unassign_gateway(&gateway.id, &project.id)
        .await?;
    tracing::info!(by = %admin.name, gateway = %gateway.name, project = %project.name,
        "gateway unassigned from project");
    Ok(Json(shown(&state, &admin, vec![gateway]).await?.remove(0)))
}

/// The project named `name`, or a 404 saying so.
async fn project(state: &AppState, name: &str) -> Result<ProjectRecord, ApiError> {
    state.store.project(name).await.map_err(|e| match e {
        StoreError::NotFound(_) => ApiError::not_found(format!("project {name} not found")),
        other => other.into(),
    })
}

/// The gateways as `user` may see them: with their audit keys, and the projects that may use
/// them (for a user who is not an organisation admin, only among their own projects).
async fn shown(
    state: &AppState,
    user: &UserRecord,
    gateways: Vec<GatewayRecord>,
) -> Result<Vec<Gateway>, ApiError> {
    let now = now();
    let keys: std::collections::HashMap<String, String> = state
        .store
        .gateway_audit_keys()
        .await?
        .into_iter()
        .collect();
    let visible: Option<Vec<String>> = if user.admin {
        None
    } else {
        let mine = state.store.memberships(&user.id).await?;
        Some(mine.into_iter().map(|(p, _)| p.name).collect())
    };
    let assigned = state.store.gateway_projects().await?;
    let views = gateways.iter().map(|g| {
        let mut view = views::gateway(g, now);
        view.audit_key = keys
            .get(&g.id)
            .and_then(|k| crate::audit::evidence::signing::PublicKey::from_base64(k).ok());
        view.projects = assigned
            .iter()
            .filter(|(id, name)| {
                *id == g.id && visible.as_ref().is_none_or(|mine| mine.contains(name))
            })
            .map(|(_, name)| name.clone())
            .collect();
        view
    });
    Ok(views.collect())
}

/// `POST /v1/gateways/enroll`: authenticated by the enrollment token in the body.
pub(crate) async fn enroll(
    State(state): State<AppState>,
    attempt: Attempt,
    ApiJson(body): ApiJson<EnrollGateway>,
) -> Result<Json<EnrolledGateway>, ApiError> {
    attempt.record(format!("enrollment of gateway {:?}", body.name));
    // One answer for an unknown gateway, a wrong, spent or expired token: nothing to probe.
    let refused = || {
        ApiError::unauthenticated(format!(
            "invalid, used or expired enrollment token for gateway {:?}; create a new one with \
             `kms-pam gateway create`",
            body.name
        ))
    };
    let host = validate::address(&body.address)?;
    let enrollment = TokenHash::of(body.enrollment_token.expose().trim());
    let now = now();
    let gateway = match state
        .store
        .check_enrollment(&body.name, &enrollment, now)
        .await
    {
        Ok(gateway) => gateway,
        Err(StoreError::NotFound(_)) => return Err(refused()),
        Err(e) => return Err(e.into()),
    };
    let certificate =
        state
            .ca
            .sign_gateway_csr(&body.csr, &gateway.name, &[host], GATEWAY_CERT_VALIDITY)?;
    let (token, token_hash) = issue_token(GATEWAY_TOKEN_PREFIX)?;
    let enrolled = state
        .store
        .complete_enrollment(Enrollment {
            gateway_id: gateway.id,
            enrollment,
            token: token_hash,
            address: body.address.clone(),
            now,
        })
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => refused(),
            other => other.into(),
        })?;
    if let Some(key) = &body.audit_key {
        let endorsement = endorse(&state, &enrolled.id, key);
        state
            .store
            .set_gateway_audit_key(&enrolled.id, &key.to_base64(), &endorsement, now)
            .await?;
        tracing::info!(gateway = %enrolled.name, key = %key.fingerprint(), "gateway audit key registered");
    }
    if let Some(key) = &body.sealing_key {
        state
            .store
            .set_gateway_sealing_key(&enrolled.id, &key.to_base64(), now)
            .await?;
    }
    tracing::info!(gateway = %enrolled.name, address = %body.address, "gateway enrolled");
    Ok(Json(EnrolledGateway {
        certificate,
        ca_certificate: state.ca.cert_pem().to_owned(),
        gateway_token: token,
    }))
}

/// `POST /v1/gateways/{name}/revoke`: its token is refused (401), KMS opens no session on it,
/// and its active sessions end (cause `gateway_revoked`). A new `gateway create NAME` hands out
/// an enrollment token to bring it back.
pub(crate) async fn revoke(
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
    Ok(Json(shown(&state, &admin, vec![gateway]).await?.remove(0)))
}
