//! What makes a session's record hold against whoever can write KMS's database
//! (docs/session-tracking.md, "Threat model"): KMS's signed head of each ended session, over the
//! gateway's key as KMS endorsed it (`keys.rs`); `record.rs` builds the evidence `sessions
//! verify` and `sessions export` read from it.
//!
//! KMS signs a session's head once, when its record completes: it holds the gateway's signed
//! end as the session's last event and its own record says the session is over. That is on
//! ingest of that end (the usual case: KMS ended the session, the gateway followed), or when KMS
//! ends a session whose gateway stopped first. A read signs a missing head only where the
//! database cannot make it say something else ([`may_seal_late`]); a head once signed is never
//! signed again. The key that signs, and endorses gateway keys, is read from its file at start
//! (`ServerConfig::audit_key_path`), never from the database; a gateway
//! key without KMS's endorsement is not trusted.

use std::time::Duration;

use serde_json::Value;

use super::keys::gateway_key;
use crate::audit::evidence::{SessionHead, SessionMetadata, SignedHead, HEAD_FORMAT};
use crate::kms::api::SessionView;
use crate::server::edge::error::ApiError;
use crate::server::edge::state::{now, AppState};
use crate::server::edge::views;
use crate::server::store::{EventRecord, HeadRecord, SessionRecord};
use crate::session::{EndCause, SessionId, SessionStatus};

/// How long after the gateway's signed end KMS still signs a missing head on a read (an
/// upload whose signing failed is retried by the next read): past it, a missing head is not
/// signed from whatever the database then says, and `verify` reports it.
const LATE_SEAL: Duration = crate::audit::evidence::chain::DEFAULT_ENDED_GRACE;

/// Signs the session's head if its record is complete and has none: the gateway's signed end is
/// the last stored event and KMS says the session is over. A head once signed is never signed
/// again. Heads are signed when the record completes (the gateway's end arrives after KMS's,
/// or KMS ends a session whose gateway stopped first); a read signs a missing head only when
/// that cannot sign a record the database was made to say ([`may_seal_late`]). Returns whether
/// the session has a head now.
pub(crate) async fn seal_if_complete(
    state: &AppState,
    record: &SessionRecord,
) -> Result<bool, ApiError> {
    seal(state, record, false).await
}

/// Signs the session's head if it may (as [`seal_if_complete`]); `on_read`: asked by a read,
/// which signs only where [`may_seal_late`] allows.
pub(crate) async fn seal(
    state: &AppState,
    record: &SessionRecord,
    on_read: bool,
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
    let Some(end) = end_event(&last) else {
        return Ok(false);
    };
    if on_read && !may_seal_late(&view, &end) {
        tracing::warn!(session = %id, "the session's record has no head signed by KMS and it \
            is too late to sign one from the database; verify reports it");
        return Ok(false);
    }
    let Some(gateway_key) = gateway_key(state, &record.gateway_id).await? else {
        return Ok(false);
    };
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

/// Whether a read may sign a missing head: within [`LATE_SEAL`] of the gateway's signed end; or
/// when the gateway's end carries KMS's own end (status, cause, time), which `verify` holds the
/// database to; or for an expiry at the expiry the gateway signed at the start (`verify` holds
/// `expires_at` to it). Otherwise the database alone would say how the session ended.
fn may_seal_late(view: &SessionView, end: &Value) -> bool {
    let text = |k| end.get(k).and_then(Value::as_str);
    let recent = text("time")
        .and_then(crate::time::parse_rfc3339)
        .is_some_and(|t| now() <= t + LATE_SEAL);
    let carries_kms_end = text("ended_at").is_some();
    let s = &view.session;
    let expired_at_expiry = s.status == SessionStatus::Expired
        && view.end_cause == Some(EndCause::Expiry)
        && s.ended_at == Some(s.expires_at);
    recent || carries_kms_end || expired_at_expiry
}

/// The last event as JSON, if it is the gateway's signed end.
pub(crate) fn end_event(event: &EventRecord) -> Option<Value> {
    serde_json::from_str::<Value>(&event.json)
        .ok()
        .filter(|v| v.get("type").and_then(Value::as_str) == Some("session_ended"))
}

/// Signs the heads of the sessions whose signed end an upload just delivered.
pub(crate) async fn seal_delivered(state: &AppState, sessions: &[SessionId]) {
    for id in sessions {
        let sealed = match state.store.session(id).await {
            Ok(record) => seal_if_complete(state, &record).await,
            Err(e) => Err(e.into()),
        };
        if let Err(e) = sealed {
            tracing::warn!(session = %id, error = ?e, "signing the session head failed; \
                the next read of the session tries again");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::session::Session;

    fn view(status: SessionStatus, cause: Option<EndCause>, ended_at: SystemTime) -> SessionView {
        let expires_at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_003_600);
        SessionView {
            session: Session {
                id: SessionId::new("s"),
                user: "alice".into(),
                resource: "prod".into(),
                account: "admin".into(),
                gateway: "gw".into(),
                status,
                created_at: expires_at - Duration::from_secs(3600),
                expires_at,
                ended_at: Some(ended_at),
                reason: None,
                binding: None,
            },
            end_cause: cause,
        }
    }

    fn end(time: SystemTime, kms_end: bool) -> Value {
        let mut end = serde_json::json!({
            "type": "session_ended",
            "status": "terminated",
            "time": humantime::format_rfc3339_millis(time).to_string(),
        });
        if kms_end {
            end["ended_at"] = Value::from("2027-01-15T08:30:00Z");
        }
        end
    }

    #[test]
    fn a_read_signs_a_missing_head_only_where_the_database_cannot_decide_the_end() {
        let long_ago = now() - Duration::from_secs(3600);
        let ended = view(SessionStatus::Ended, Some(EndCause::User), long_ago);
        // Just after the gateway's end (a failed signing retried): yes.
        assert!(may_seal_late(&ended, &end(now(), false)));
        // Long after, the gateway's end binding no KMS end: the database would decide. No.
        assert!(!may_seal_late(&ended, &end(long_ago, false)));
        // The gateway's end binds KMS's: verify holds the database to it. Yes.
        assert!(may_seal_late(&ended, &end(long_ago, true)));
        // Expired at the expiry the gateway signed: yes; any other end time: no.
        let mut expired = view(SessionStatus::Expired, Some(EndCause::Expiry), long_ago);
        assert!(!may_seal_late(&expired, &end(long_ago, false)));
        expired.session.ended_at = Some(expired.session.expires_at);
        assert!(may_seal_late(&expired, &end(long_ago, false)));
    }
}
