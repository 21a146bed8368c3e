//! A session's record as its readers get it: the stored events that parse, how far the record
//! has reached KMS, the record as self-contained evidence (a bundle) and its check against KMS's
//! key. Reading signs a missing head where that is still safe (`sealing.rs`).

use std::time::SystemTime;

use serde_json::Value;

use super::keys::{gateway_key, held_gateway_key};
use super::sealing::{end_event, seal};
use crate::audit::evidence::{
    verify_session, Evidence, SessionBundle, SessionHead, SessionMetadata, SignedHead,
    BUNDLE_FORMAT,
};
use crate::audit::{AuditEvent, ChainReport};
use crate::kms::api::AuditProgress;
use crate::server::edge::error::ApiError;
use crate::server::edge::state::{now, AppState};
use crate::server::edge::views;
use crate::server::store::{EventRecord, HeadRecord, SessionRecord, StoreError};
use crate::session::SessionId;

/// The session's stored events that still parse, by `seq`. An unreadable row is left out with
/// a warning; `verify` reports it.
pub(crate) async fn events(
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

fn is_end(event: &EventRecord) -> bool {
    end_event(event).is_some()
}

/// How far the session's record has reached KMS (signing its head first if it can).
pub(crate) async fn progress(
    state: &AppState,
    record: &SessionRecord,
) -> Result<AuditProgress, ApiError> {
    let sealed = seal(state, record, true).await?;
    let last = state.store.last_event(&record.session.id).await?;
    Ok(AuditProgress {
        events: last.as_ref().map_or(0, |e| e.seq),
        end_received: last.as_ref().is_some_and(is_end),
        sealed,
    })
}

/// The session's record as evidence: metadata as KMS holds it, events exactly as stored, the
/// signed head, and the keys to check them with.
pub(crate) async fn bundle(
    state: &AppState,
    record: &SessionRecord,
) -> Result<SessionBundle, ApiError> {
    seal(state, record, true).await?;
    let id = &record.session.id;
    let stored = state.store.session_events(id).await?;
    // A row that is not JSON any more stays in as a string: the chain check reports it.
    let events = stored
        .iter()
        .map(|e| serde_json::from_str(&e.json).unwrap_or_else(|_| Value::from(e.json.clone())))
        .collect();
    let head = match state.store.session_head(id).await? {
        Some(stored) => Some(read_head(&stored)?),
        None => None,
    };
    // A signed head names the key its events were signed with; before one, the gateway's.
    let gateway_key = match &head {
        Some(head) => Some(head.head.gateway_key),
        None => gateway_key(state, &record.gateway_id).await?,
    };
    Ok(SessionBundle {
        format: BUNDLE_FORMAT.to_owned(),
        session: SessionMetadata::from_view(&views::bound_session(record, now())),
        events,
        head,
        gateway_key,
        kms_key: state.audit_key.public_key(),
        exported_at: SystemTime::now(),
    })
}

fn read_head(stored: &HeadRecord) -> Result<SignedHead, ApiError> {
    // An unreadable head is kept as one that cannot verify, so `verify` says so.
    let head = serde_json::from_str(&stored.head).map_err(|e| {
        ApiError::internal(&StoreError::Corrupt(format!(
            "the signed head of session {} is not readable: {e}",
            stored.session_id
        )))
    })?;
    Ok(SignedHead {
        head,
        signature: stored.signature.clone(),
    })
}

/// `sessions verify`: the stored record checked with KMS's own key (from its file).
pub(crate) async fn verify(
    state: &AppState,
    record: &SessionRecord,
) -> Result<ChainReport, ApiError> {
    let head = state.store.session_head(&record.session.id).await?;
    if head.is_some_and(|h| serde_json::from_str::<SessionHead>(&h.head).is_err()) {
        return Ok(ChainReport::Altered {
            seq: None,
            event_id: None,
            reason: "the session's signed head is not readable any more".to_owned(),
        });
    }
    let bundle = bundle(state, record).await?;
    let kms_key = state.audit_key.public_key();
    if bundle.head.is_none() {
        if let Some((key, false)) = held_gateway_key(state, &record.gateway_id).await? {
            return Ok(ChainReport::Altered {
                seq: None,
                event_id: None,
                reason: format!(
                    "the audit key KMS's database holds for gateway {} ({}) is not endorsed by \
                     KMS's key: it was put there by someone else than KMS (or before this \
                     version and not endorsed at the upgrade); its signatures prove nothing",
                    record.session.gateway,
                    key.fingerprint()
                ),
            });
        }
    }
    Ok(verify_session(&Evidence {
        metadata: &bundle.session,
        events: &bundle.events,
        head: bundle.head.as_ref(),
        gateway_key: bundle.gateway_key.as_ref(),
        kms_key: &kms_key,
        checked_at: now(),
    }))
}
