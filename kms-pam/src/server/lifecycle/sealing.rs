//! What makes a session's record hold against whoever can write KMS's database
//! (docs/session-tracking.md, "Threat model"): KMS's signed head of each ended session, over the
//! gateway key KMS bound the session to when it created it (`keys.rs`); `record.rs` builds the
//! evidence `sessions verify` and `sessions export` read from it.
//!
//! KMS signs a session's head once, when its record completes: it holds the gateway's signed
//! end as the session's last event and its own record says the session is over. That is on
//! ingest of that end (the usual case: KMS ended the session, the gateway followed; a gateway
//! that sends the end again, because its upload failed, tries again), when KMS ends a session
//! whose gateway stopped first, or when the reaper marks it expired. A read never signs a head,
//! and a head once signed is never signed again. KMS signs only over events whose chain holds
//! and that are signed with the session's bound key: a history rewritten in the database, and
//! re-signed with a key registered since, is never vouched for. The key that signs is read from
//! its file at start (`ServerConfig::audit_key_path`), never from the database.

use serde_json::Value;

use super::keys::session_key;
use crate::audit::evidence::{check_events, SessionHead, SessionMetadata, SignedHead, HEAD_FORMAT};
use crate::server::edge::error::ApiError;
use crate::server::edge::state::{now, AppState};
use crate::server::edge::views;
use crate::server::store::{EventRecord, HeadRecord, SessionRecord};
use crate::session::{SessionId, SessionStatus};

/// Signs the session's head if its record is complete and has none: the gateway's signed end is
/// the last stored event, KMS says the session is over, and every stored event is chained and
/// signed with the key KMS bound the session to. A head once signed is never signed again.
/// Returns whether the session has a head now.
pub(crate) async fn seal_if_complete(
    state: &AppState,
    record: &SessionRecord,
) -> Result<bool, ApiError> {
    let id = &record.session.id;
    if state.store.session_head(id).await?.is_some() {
        return Ok(true);
    }
    let view = views::bound_session(record, now());
    if view.session.status == SessionStatus::Active {
        return Ok(false);
    }
    let Some(last) = state.store.last_event(id).await? else {
        return Ok(false);
    };
    if end_event(&last).is_none() {
        return Ok(false);
    }
    let Some(gateway_key) = session_key(state, record).await?.key() else {
        tracing::warn!(session = %id, "no gateway key KMS vouches for; the session's head is \
            not signed and verify reports why");
        return Ok(false);
    };
    let events: Vec<Value> = state
        .store
        .session_events(id)
        .await?
        .iter()
        .map(|e| serde_json::from_str(&e.json).unwrap_or_else(|_| Value::from(e.json.clone())))
        .collect();
    if let Some(problem) = check_events(&events, &gateway_key) {
        tracing::warn!(session = %id, ?problem, "the stored events do not hold under the \
            session's gateway key; KMS does not sign a head over them");
        return Ok(false);
    }
    let sealed_at = now();
    let head = SessionHead {
        format: HEAD_FORMAT.to_owned(),
        session: SessionMetadata::from_view(&view),
        last_seq: last.seq,
        last_hash: last.hash.clone(),
        gateway_key,
        sealed_at,
    };
    let signed = SignedHead::sign(head, &state.audit_key).map_err(|e| ApiError::internal(&e))?;
    let stored = HeadRecord {
        session_id: id.clone(),
        head: serde_json::to_string(&signed.head).map_err(|e| ApiError::internal(&e))?,
        signature: signed.signature,
        sealed_at,
    };
    state.store.save_session_head(&stored).await?;
    tracing::info!(session = %id, events = last.seq, "session head signed");
    Ok(true)
}

/// The last event as JSON, if it is the gateway's signed end.
pub(crate) fn end_event(event: &EventRecord) -> Option<Value> {
    serde_json::from_str::<Value>(&event.json)
        .ok()
        .filter(|v| v.get("type").and_then(Value::as_str) == Some("session_ended"))
}

/// Signs the heads of the sessions whose record may just have completed (their gateway's end
/// was delivered, or KMS ended them). Every session is tried; the first failure is returned,
/// so that an upload that delivered an end fails and its gateway sends it again.
pub(crate) async fn seal_delivered(
    state: &AppState,
    sessions: &[SessionId],
) -> Result<(), ApiError> {
    let mut first = None;
    for id in sessions {
        let sealed = match state.store.session(id).await {
            Ok(record) => seal_if_complete(state, &record).await,
            Err(e) => Err(e.into()),
        };
        if let Err(e) = sealed {
            tracing::warn!(session = %id, error = ?e, "signing the session head failed");
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}
