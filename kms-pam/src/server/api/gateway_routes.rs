//! The endpoints gateways call (docs/api.md, "The gateway's routes"): heartbeats, the sessions
//! bound to them, registering their audit and sealing keys, and following the session change
//! log. The credential endpoint is the one place a service-account token leaves the KMS
//! (security invariant 1, docs/security.md), and only sealed to the gateway's sealing key.
//! Their audit events are `session_events.rs`'s.

use std::time::Duration;

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::credential::sealing::{seal_token, SealingPublicKey};
use crate::kms::api::{
    Changes, GatewayCredential, Heartbeat, RegisterAuditKey, RegisterSealingKey, SessionView,
};
use crate::server::edge::auth::GatewayCaller;
use crate::server::edge::error::ApiError;
use crate::server::edge::extract::{ApiJson, ApiPath, ApiQuery};
use crate::server::edge::recording;
use crate::server::edge::state::{now, AppState};
use crate::server::edge::{validate, views};
use crate::server::lifecycle::feed::{read, MAX_WAIT, RECHECK};
use crate::server::lifecycle::keys::{endorse, held_gateway_key};
use crate::server::store::{GatewayRecord, SessionRecord, StoreError};
use crate::session::{SessionId, SessionStatus};

/// `POST /v1/gateway/heartbeat`: the gateway's address and how CLIs reach it (directly, through
/// which relays), kept until the next one.
pub(crate) async fn heartbeat(
    State(state): State<AppState>,
    GatewayCaller(gateway): GatewayCaller,
    ApiJson(body): ApiJson<Heartbeat>,
) -> Result<Json<Value>, ApiError> {
    validate::address(&body.address)?;
    validate::reach(&body.reach)?;
    state
        .store
        .record_heartbeat(&gateway.id, &body.address, &body.reach, now())
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
    Ok(Json(views::bound_session(&record, now())))
}

/// `GET /v1/gateway/sessions/{id}/credential`: the account's URL, TLS settings and token sealed
/// to the gateway's sealing key (HPKE, bound to the session and gateway), for the gateway the
/// session is bound to, while the session is active; 403 otherwise. A gateway that registered no
/// sealing key (one older than sealing) gets 409 and no token: it must be upgraded or restarted.
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
    if let Some(why) =
        crate::server::edge::gateway_scope::outside_allow_list(&gateway, &resource.url)
    {
        return Err(ApiError::forbidden(format!("session {id}: {why}")));
    }
    let sealing_key = sealing_key_of(&state, &gateway).await?;
    let token = state.store.account_token(&account).await?;
    let sealed_token =
        seal_token(&sealing_key, &token, &id, &gateway.name).map_err(|e| ApiError::internal(&e))?;
    let recording = recording::policy(&state, &resource.id).await?;
    tracing::info!(session = %id, gateway = %gateway.name, "credential released to gateway, sealed");
    Ok(Json(GatewayCredential {
        url: resource.url,
        ssl_verify: resource.ssl_verify,
        ca_cert: resource.ca_cert,
        sealed_token,
        recording,
    }))
}

/// The key KMS seals the gateway's credentials to; a gateway without one gets a refusal saying
/// what to do, never the token in clear.
async fn sealing_key_of(
    state: &AppState,
    gateway: &GatewayRecord,
) -> Result<SealingPublicKey, ApiError> {
    let stored = state.store.gateway_sealing_key(&gateway.id).await?;
    let key = stored.and_then(|key| SealingPublicKey::from_base64(&key).ok());
    key.ok_or_else(|| {
        ApiError::conflict(format!(
            "gateway {} has no credential sealing key registered, and KMS hands out \
             service-account tokens only sealed to one: upgrade kms-pam-gateway and restart it \
             (it registers its key at start)",
            gateway.name
        ))
    })
}

/// `POST /v1/gateway/sealing-key`: a gateway enrolled before sealing keys existed registers the
/// key KMS seals its credentials to, once; another key later is refused (a new enrollment
/// replaces it).
pub(crate) async fn register_sealing_key(
    State(state): State<AppState>,
    GatewayCaller(gateway): GatewayCaller,
    ApiJson(body): ApiJson<RegisterSealingKey>,
) -> Result<Json<Value>, ApiError> {
    let key = body.public_key.to_base64();
    if state
        .store
        .add_gateway_sealing_key(&gateway.id, &key, now())
        .await?
    {
        tracing::info!(gateway = %gateway.name, "gateway credential sealing key registered");
        return Ok(Json(json!({"status": "registered"})));
    }
    match state.store.gateway_sealing_key(&gateway.id).await? {
        Some(held) if held == key => Ok(Json(json!({"status": "registered"}))),
        _ => Err(ApiError::conflict(format!(
            "gateway {} already has another credential sealing key; enroll it again to change \
             keys",
            gateway.name
        ))),
    }
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

/// `POST /v1/gateway/audit-key`: a gateway enrolled before audit keys existed registers its
/// key, once; a gateway that has one already cannot replace it this way (a new enrollment
/// does).
pub(crate) async fn register_key(
    State(state): State<AppState>,
    GatewayCaller(gateway): GatewayCaller,
    ApiJson(body): ApiJson<RegisterAuditKey>,
) -> Result<Json<Value>, ApiError> {
    let key = body.public_key.to_base64();
    let endorsement = endorse(&state, &gateway.id, &body.public_key);
    if state
        .store
        .add_gateway_audit_key(&gateway.id, &key, &endorsement, now())
        .await?
    {
        tracing::info!(gateway = %gateway.name, key = %body.public_key.fingerprint(),
            "gateway audit key registered");
        return Ok(Json(serde_json::json!({"status": "registered"})));
    }
    match held_gateway_key(&state, &gateway.id).await? {
        Some((held, true)) if held == body.public_key => {
            Ok(Json(serde_json::json!({"status": "registered"})))
        }
        _ => Err(ApiError::conflict(format!(
            "gateway {} already has another audit key (or one KMS did not endorse); enroll it \
             again to change keys",
            gateway.name
        ))),
    }
}

/// Query of `GET /v1/gateway/changes`.
#[derive(Debug, Deserialize)]
pub(crate) struct ChangesQuery {
    #[serde(default)]
    after: u64,
    #[serde(default)]
    wait_secs: u64,
}

/// `GET /v1/gateway/changes?after=SEQ&wait_secs=N`.
pub(crate) async fn changes(
    State(state): State<AppState>,
    GatewayCaller(gateway): GatewayCaller,
    ApiQuery(query): ApiQuery<ChangesQuery>,
) -> Result<Json<Changes>, ApiError> {
    let wait = Duration::from_secs(query.wait_secs).min(MAX_WAIT);
    let deadline = Instant::now() + wait;
    let mut wake = state.feed.subscribe();
    loop {
        wake.borrow_and_update();
        let answer = read(&state, &gateway.id, query.after).await?;
        let final_answer =
            !answer.changes.is_empty() || query.after == 0 || answer.seq < query.after;
        let left = deadline.saturating_duration_since(Instant::now());
        if final_answer || left.is_zero() {
            return Ok(Json(answer));
        }
        tokio::select! {
            changed = wake.changed() => {
                if changed.is_err() {
                    tokio::time::sleep(left.min(RECHECK)).await;
                }
            }
            () = tokio::time::sleep(left.min(RECHECK)) => {}
            () = state.shutdown.cancelled() => return Ok(Json(answer)),
        }
    }
}
