//! The endpoints gateways call: heartbeats, and the sessions bound to them. The credential
//! endpoint is the one place a service-account token leaves the KMS (SPEC §2.1).

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::auth::GatewayCaller;
use super::error::{ApiError, ApiJson, ApiPath};
use super::state::{now, AppState};
use super::{validate, views};
use crate::kms::api::{GatewayCredential, Heartbeat, SessionView};
use crate::server::store::{GatewayRecord, SessionRecord, StoreError};
use crate::session::{SessionId, SessionStatus};

/// `POST /v1/gateway/heartbeat`.
pub(crate) async fn heartbeat(
    State(state): State<AppState>,
    GatewayCaller(gateway): GatewayCaller,
    ApiJson(body): ApiJson<Heartbeat>,
) -> Result<Json<Value>, ApiError> {
    validate::address(&body.address)?;
    state
        .store
        .record_heartbeat(&gateway.id, &body.address, now())
        .await?;
    Ok(Json(json!({"status": "ok"})))
}

/// `GET /v1/gateway/sessions/{id}`: 404 unless the session is bound to the caller.
pub(crate) async fn session(
    State(state): State<AppState>,
    GatewayCaller(gateway): GatewayCaller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<SessionView>, ApiError> {
    let record = lookup(&state, &id).await?;
    if record.gateway_id != gateway.id {
        return Err(not_found(&id));
    }
    Ok(Json(views::session(&record, now())))
}

/// `GET /v1/gateway/sessions/{id}/credential`: the account's URL, TLS settings and token, for
/// the gateway the session is bound to, while the session is active; 403 otherwise.
pub(crate) async fn credential(
    State(state): State<AppState>,
    GatewayCaller(gateway): GatewayCaller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<GatewayCredential>, ApiError> {
    let record = lookup(&state, &id).await?;
    check_releasable(&record, &gateway)?;
    let gone = |e: StoreError| match e {
        StoreError::NotFound(_) => {
            ApiError::forbidden(format!("the account of session {id} was deleted"))
        }
        other => other.into(),
    };
    let account = state
        .store
        .account_by_id(&record.account_id)
        .await
        .map_err(gone)?;
    let resource = state
        .store
        .resource_by_id(&record.resource_id)
        .await
        .map_err(gone)?;
    let token = state.store.account_token(&account).await?;
    let recording = super::recording::policy(&state, &resource.id).await?;
    tracing::info!(session = %id, gateway = %gateway.name, "credential released to gateway");
    Ok(Json(GatewayCredential {
        url: resource.url,
        ssl_verify: resource.ssl_verify,
        ca_cert: resource.ca_cert,
        token,
        recording,
    }))
}

fn check_releasable(record: &SessionRecord, gateway: &GatewayRecord) -> Result<(), ApiError> {
    let id = &record.session.id;
    if record.gateway_id != gateway.id {
        return Err(ApiError::forbidden(format!(
            "session {id} is not bound to gateway {}",
            gateway.name
        )));
    }
    let status = record.session.status_at(now());
    if status != SessionStatus::Active {
        return Err(ApiError::forbidden(format!("session {id} is {status}")));
    }
    Ok(())
}

async fn lookup(state: &AppState, id: &str) -> Result<SessionRecord, ApiError> {
    match state.store.session(&SessionId::new(id)).await {
        Ok(record) => Ok(record),
        Err(StoreError::NotFound(_)) => Err(not_found(id)),
        Err(e) => Err(e.into()),
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("session {id} not found"))
}
