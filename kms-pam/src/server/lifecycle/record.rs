//! A session's record as its readers get it: the stored events that parse, how far the record
//! has reached KMS, the record as self-contained evidence (a bundle) and its check against KMS's
//! key. Reading never signs a head (`sealing.rs`).

use std::time::SystemTime;

use serde_json::Value;

use super::keys::{session_key, SessionKey};
use super::sealing::end_event;
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

/// How far the session's record has reached KMS.
pub(crate) async fn progress(
    state: &AppState,
    record: &SessionRecord,
) -> Result<AuditProgress, ApiError> {
    let sealed = state
        .store
        .session_head(&record.session.id)
        .await?
        .is_some();
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
    // A signed head names the key its events were signed with; before one, the key KMS bound
    // the session to.
    let gateway_key = match &head {
        Some(head) => Some(head.head.gateway_key),
        None => session_key(state, record).await?.key(),
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
    let altered = |reason: String| ChainReport::Altered {
        seq: None,
        event_id: None,
        reason,
    };
    match (session_key(state, record).await?, &bundle.head) {
        (SessionKey::Untrusted(reason), None) => return Ok(altered(reason)),
        (SessionKey::Bound(bound), Some(head)) if head.head.gateway_key != bound => {
            return Ok(altered(format!(
                "KMS's head names gateway key {}, but KMS bound the session to {} when it \
                 created it",
                head.head.gateway_key.fingerprint(),
                bound.fingerprint()
            )));
        }
        _ => {}
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
