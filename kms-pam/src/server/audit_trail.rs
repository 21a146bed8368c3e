//! What makes a session's record hold against whoever can write KMS's database
//! (docs/session-tracking.md, "Threat model"): the gateways' audit keys and KMS's endorsement of
//! each, KMS's signed head of each ended session, and the evidence `sessions verify` and
//! `sessions export` are built from.
//!
//! KMS signs a session's head once, when its record completes: it holds the gateway's signed
//! end as the session's last event and its own record says the session is over. That is on
//! ingest of that end (the usual case: KMS ended the session, the gateway followed), or when KMS
//! ends a session whose gateway stopped first. A read signs a missing head only where the
//! database cannot make it say something else ([`may_seal_late`]); a head once signed is never
//! signed again. The key that signs, and endorses gateway keys, is read from its file at start
//! ([`ServerConfig::audit_key_path`](super::ServerConfig)), never from the database; a gateway
//! key without KMS's endorsement is not trusted.

use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::Json;
use serde_json::Value;

use super::auth::{AnyUser, GatewayCaller};
use super::error::{ApiError, ApiJson, ApiPath};
use super::paths::IdPath;
use super::rights::SessionCaller;
use super::sessions::visible_session;
use super::state::{now, AppState};
use super::views;
use crate::audit::evidence::signing::{key_endorsement_message, PublicKey, SigningKey};
use crate::audit::evidence::{
    verify_session, Evidence, SessionBundle, SessionHead, SessionMetadata, SignedHead,
    BUNDLE_FORMAT, HEAD_FORMAT,
};
use crate::audit::ChainReport;
use crate::kms::api::{AuditKeys, AuditProgress, GatewayAuditKey, RegisterAuditKey, SessionView};
use crate::server::store::{EventRecord, HeadRecord, SessionRecord, StoreError};
use crate::session::{EndCause, SessionId, SessionStatus};

/// The audit key registered for a gateway, if KMS's own key endorses it: a key without a valid
/// endorsement (swapped in the database, or stored before endorsements and not endorsed at the
/// upgrade) is not trusted for anything.
pub(crate) async fn gateway_key(
    state: &AppState,
    gateway_id: &str,
) -> Result<Option<PublicKey>, ApiError> {
    Ok(match held_gateway_key(state, gateway_id).await? {
        Some((key, true)) => Some(key),
        _ => None,
    })
}

/// The audit key the database holds for a gateway, and whether KMS's endorsement of it
/// verifies with KMS's key.
async fn held_gateway_key(
    state: &AppState,
    gateway_id: &str,
) -> Result<Option<(PublicKey, bool)>, ApiError> {
    let Some((text, endorsement)) = state.store.gateway_audit_key(gateway_id).await? else {
        return Ok(None);
    };
    let key = PublicKey::from_base64(&text).map_err(|e| {
        ApiError::internal(&format!("stored audit key of gateway {gateway_id}: {e}"))
    })?;
    let endorsed = endorsement.is_some_and(|sig| {
        state
            .audit_key
            .public_key()
            .verify(&key_endorsement_message(gateway_id, &key), &sig)
    });
    Ok(Some((key, endorsed)))
}

/// KMS's endorsement of `key` as the audit key of gateway `gateway_id` (base64 signature).
pub(crate) fn endorse(state: &AppState, gateway_id: &str, key: &PublicKey) -> String {
    endorse_with(&state.audit_key, gateway_id, key)
}

pub(crate) fn endorse_with(kms_key: &SigningKey, gateway_id: &str, key: &PublicKey) -> String {
    kms_key.sign(&key_endorsement_message(gateway_id, key))
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

/// Endorses, once, the gateway audit keys stored before KMS endorsed keys: at the first start
/// of this version, marked by the file `marker` (beside KMS's audit key, not in the database,
/// which whoever can write it could reset). Later starts endorse nothing, so a key swapped in
/// the database afterwards stays unendorsed. Returns how many keys it endorsed.
pub(crate) async fn endorse_keys_at_upgrade(
    store: &dyn crate::server::store::Store,
    kms_key: &SigningKey,
    marker: &std::path::Path,
) -> Result<usize, crate::server::ServerError> {
    if marker.exists() {
        return Ok(0);
    }
    let mut endorsed = 0;
    for (gateway_id, text) in store.unendorsed_gateway_audit_keys().await? {
        let Ok(key) = PublicKey::from_base64(&text) else {
            tracing::warn!(gateway = %gateway_id, "stored audit key is not a key; not endorsed");
            continue;
        };
        let endorsement = endorse_with(kms_key, &gateway_id, &key);
        if store
            .endorse_gateway_audit_key(&gateway_id, &text, &endorsement)
            .await?
        {
            tracing::info!(gateway = %gateway_id, key = %key.fingerprint(),
                "endorsed a gateway audit key stored before this version (upgrade)");
            endorsed += 1;
        }
    }
    let note = format!(
        "KMS endorsed the gateway audit keys stored before endorsements at {}; it does so only \
         while this file is missing\n",
        crate::time::format_rfc3339(SystemTime::now())
    );
    std::fs::write(marker, note).map_err(|source| crate::server::ServerError::DataDir {
        path: marker.to_owned(),
        source,
    })?;
    Ok(endorsed)
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

async fn seal(state: &AppState, record: &SessionRecord, on_read: bool) -> Result<bool, ApiError> {
    let id = &record.session.id;
    if state.store.session_head(id).await?.is_some() {
        return Ok(true);
    }
    let view = views::session(record, now());
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
fn end_event(event: &EventRecord) -> Option<Value> {
    serde_json::from_str::<Value>(&event.json)
        .ok()
        .filter(|v| v.get("type").and_then(Value::as_str) == Some("session_ended"))
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
        session: SessionMetadata::from_view(&views::session(record, now())),
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

/// `GET /v1/sessions/{id}/export`: the session's record as a self-contained bundle that
/// `kms-pam verify-bundle` checks without KMS.
pub(crate) async fn export(
    State(state): State<AppState>,
    caller: SessionCaller,
    ApiPath(IdPath { id }): ApiPath<IdPath>,
) -> Result<Json<SessionBundle>, ApiError> {
    let record = visible_session(&state, &caller, &id).await?;
    Ok(Json(bundle(&state, &record).await?))
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
