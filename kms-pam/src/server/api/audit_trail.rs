//! A session's recorded history as its owner, the project's administrators and its auditors
//! read it: the commands run (`GET /v1/sessions/{id}`), the hash chain check (`/verify`), exec
//! replays (`/recordings/{n}`) and the record as a bundle (`/export`), all built from the events
//! gateways delivered (`lifecycle/record.rs`); and the keys records are checked with
//! (`GET /v1/audit/keys`).

use axum::extract::State;
use axum::Json;
use base64::Engine;
use serde::Deserialize;

use crate::audit::evidence::signing::PublicKey;
use crate::audit::evidence::SessionBundle;
use crate::audit::{group_commands, ChainReport};
use crate::audit::{recordings, replay};
use crate::kms::api::{AuditKeys, GatewayAuditKey, RecordingView, SessionDetail};
use crate::server::edge::auth::AnyUser;
use crate::server::edge::callers::SessionCaller;
use crate::server::edge::error::ApiError;
use crate::server::edge::extract::{ApiPath, ApiQuery};
use crate::server::edge::paths::{IdPath, RecordingPath};
use crate::server::edge::state::{now, AppState};
use crate::server::edge::views;
use crate::server::lifecycle::record;
use crate::server::lifecycle::visibility::visible_session;

/// Query of `GET /v1/sessions/{id}`.
#[derive(Debug, Deserialize)]
pub(crate) struct DetailQuery {
    /// `false` leaves the commands out: `pam access` polls the status every second.
    #[serde(default = "yes")]
    commands: bool,
}

fn yes() -> bool {
    true
}

/// `GET /v1/sessions/{id}?commands=false`.
pub(crate) async fn show(
    State(state): State<AppState>,
    caller: SessionCaller,
    ApiPath(IdPath { id }): ApiPath<IdPath>,
    ApiQuery(query): ApiQuery<DetailQuery>,
) -> Result<Json<SessionDetail>, ApiError> {
    let record = visible_session(&state, &caller, &id).await?;
    let commands = if query.commands {
        group_commands(&record::events(&state, &record.session.id).await?)
    } else {
        Vec::new()
    };
    let audit = Some(record::progress(&state, &record).await?);
    Ok(Json(SessionDetail {
        session: views::session(&record, now()),
        commands,
        audit,
        client: views::session_client(&record),
    }))
}

/// `GET /v1/sessions/{id}/verify`: checks the stored record exactly as stored: the chain, the
/// gateway's signatures, KMS's signed head and the metadata (`audit_trail`).
pub(crate) async fn verify(
    State(state): State<AppState>,
    caller: SessionCaller,
    ApiPath(IdPath { id }): ApiPath<IdPath>,
) -> Result<Json<ChainReport>, ApiError> {
    let record = visible_session(&state, &caller, &id).await?;
    Ok(Json(record::verify(&state, &record).await?))
}

/// `GET /v1/sessions/{id}/recordings/{n}`: the `n`-th recorded stream, replayed.
pub(crate) async fn recording(
    State(state): State<AppState>,
    caller: SessionCaller,
    ApiPath(RecordingPath { id, n: number }): ApiPath<RecordingPath>,
) -> Result<Json<RecordingView>, ApiError> {
    let record = visible_session(&state, &caller, &id).await?;
    let events = record::events(&state, &record.session.id).await?;
    let all = recordings(&events);
    let missing = || {
        ApiError::not_found(format!(
            "session {id} has no recording {number} (it has {})",
            all.len()
        ))
    };
    let found = number
        .checked_sub(1)
        .and_then(|i| all.get(i))
        .ok_or_else(missing)?;
    let ended = found.ended.as_ref();
    Ok(Json(RecordingView {
        number,
        details: found.details.clone(),
        complete: found.complete(),
        truncated_reason: ended.and_then(|e| e.reason.clone()),
        exit_code: found.exit_code(),
        gaps: ended.map(|e| e.gaps.clone()).unwrap_or_default(),
        output_base64: base64::engine::general_purpose::STANDARD.encode(replay(found)),
    }))
}

/// `GET /v1/sessions/{id}/export`: the session's record as a self-contained bundle that
/// `kms-pam verify-bundle` checks without KMS.
pub(crate) async fn export(
    State(state): State<AppState>,
    caller: SessionCaller,
    ApiPath(IdPath { id }): ApiPath<IdPath>,
) -> Result<Json<SessionBundle>, ApiError> {
    let record = visible_session(&state, &caller, &id).await?;
    Ok(Json(record::bundle(&state, &record).await?))
}

/// `GET /v1/audit/keys`: KMS's key and every gateway's.
pub(crate) async fn keys(
    State(state): State<AppState>,
    AnyUser(_): AnyUser,
) -> Result<Json<AuditKeys>, ApiError> {
    let names: std::collections::HashMap<String, String> = state
        .store
        .gateways()
        .await?
        .into_iter()
        .map(|g| (g.id, g.name))
        .collect();
    let mut gateways = Vec::new();
    for (id, key) in state.store.gateway_audit_keys().await? {
        let (Some(gateway), Ok(public_key)) = (names.get(&id), PublicKey::from_base64(&key)) else {
            continue;
        };
        gateways.push(GatewayAuditKey {
            gateway: gateway.clone(),
            public_key,
        });
    }
    gateways.sort_by(|a, b| a.gateway.cmp(&b.gateway));
    Ok(Json(AuditKeys {
        kms_key: state.audit_key.public_key(),
        gateways,
    }))
}
