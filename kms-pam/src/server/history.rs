//! A session's recorded history as its owner, the project's administrators and its auditors
//! read it: the commands run
//! (`GET /v1/sessions/{id}`), the hash chain check (`/verify`) and exec replays
//! (`/recordings/{n}`), all built from the events gateways delivered.

use axum::extract::State;
use axum::Json;
use base64::Engine;
use serde::Deserialize;

use super::audit_trail;
use super::error::{ApiError, ApiPath, ApiQuery};
use super::paths::{IdPath, RecordingPath};
use super::rights::SessionCaller;
use super::sessions::visible_session;
use super::state::{now, AppState};
use super::views;
use crate::audit::{group_commands, AuditEvent, ChainReport};
use crate::audit::{recordings, replay};
use crate::kms::api::{RecordingView, SessionDetail};
use crate::session::SessionId;

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
        group_commands(&events(&state, &record.session.id).await?)
    } else {
        Vec::new()
    };
    let audit = Some(audit_trail::progress(&state, &record).await?);
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
    Ok(Json(audit_trail::verify(&state, &record).await?))
}

/// `GET /v1/sessions/{id}/recordings/{n}`: the `n`-th recorded stream, replayed.
pub(crate) async fn recording(
    State(state): State<AppState>,
    caller: SessionCaller,
    ApiPath(RecordingPath { id, n: number }): ApiPath<RecordingPath>,
) -> Result<Json<RecordingView>, ApiError> {
    let record = visible_session(&state, &caller, &id).await?;
    let events = events(&state, &record.session.id).await?;
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

/// The session's stored events that still parse, by `seq`. An unreadable row is left out with
/// a warning; `verify` reports it.
pub(super) async fn events(
    state: &AppState,
    session: &SessionId,
) -> Result<Vec<AuditEvent>, ApiError> {
    let stored = state.store.session_events(session).await?;
    let mut events = Vec::with_capacity(stored.len());
    for event in stored {
        match serde_json::from_str(&event.json) {
            Ok(parsed) => events.push(parsed),
            Err(e) => tracing::warn!(session = %session, event = %event.id, error = %e,
                "a stored audit event does not parse; left out"),
        }
    }
    Ok(events)
}
