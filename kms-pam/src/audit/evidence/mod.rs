//! A session's record as evidence: what KMS signs when the record is complete
//! ([`SignedHead`]), the self-contained [`SessionBundle`] `kms-pam pam sessions export` writes,
//! and [`verify_session`], which KMS (`sessions verify`) and the offline verifier
//! (`kms-pam verify-bundle`) both run.
//!
//! What it tells apart (docs/session-tracking.md, "Threat model"):
//! - **altered**: an event's content does not match its hash, a link is missing or out of
//!   order, an event is not signed by the gateway's key (a rewritten and re-hashed event loses
//!   its signature), or the signed head does not match the events or KMS's key;
//! - **truncated**: the signed head names more events than are stored, or an ended session
//!   lacks the gateway's signed end or KMS's signed head;
//! - **metadata changed**: the session's user, resource, account, gateway, reason, times,
//!   project, user id, client address or `User-Agent` differ from what the gateway signed in
//!   its `session_started`, or any of those, its status, end time or end cause differ from
//!   KMS's signed head.

use std::time::SystemTime;

use serde_json::Value;

pub mod chain;
mod record;
pub mod signing;

use crate::session::{SessionBinding, SessionStatus};
use chain::{verify_chain_json, ChainReport};
use signing::{event_message, PublicKey};

pub use record::{
    SessionBundle, SessionHead, SessionMetadata, SignedHead, BUNDLE_FORMAT, HEAD_FORMAT,
};

/// Everything [`verify_session`] looks at.
#[derive(Clone, Copy, Debug)]
pub struct Evidence<'a> {
    /// The session's metadata as it is held now.
    pub metadata: &'a SessionMetadata,
    /// Its events, by `seq`, as stored.
    pub events: &'a [Value],
    /// KMS's signed head, if there is one.
    pub head: Option<&'a SignedHead>,
    /// The gateway key its events must be signed with; `None` when none is known.
    pub gateway_key: Option<&'a PublicKey>,
    /// KMS's key.
    pub kms_key: &'a PublicKey,
    /// When the record was taken as it is: now for KMS, the bundle's `exported_at` offline. An
    /// unsealed record that says the session is active must not be past the expiry the gateway
    /// signed by then (nor before its last signed event).
    pub checked_at: SystemTime,
}

impl SessionBundle {
    /// Checks the bundle against the keys the verifier trusts.
    pub fn verify(&self, gateway_key: &PublicKey, kms_key: &PublicKey) -> ChainReport {
        verify_session(&Evidence {
            metadata: &self.session,
            events: &self.events,
            head: self.head.as_ref(),
            gateway_key: Some(gateway_key),
            kms_key,
            checked_at: self.exported_at,
        })
    }
}

/// Verifies a session's record: the chain, the gateway's signature on every event, KMS's signed
/// head, and the metadata against both. The first problem found is reported, in that order:
/// altered, truncated, metadata changed.
pub fn verify_session(evidence: &Evidence<'_>) -> ChainReport {
    let events = evidence.events;
    let chain = verify_chain_json(events);
    if !chain.is_intact() {
        return chain;
    }
    if let Some(report) = check_signatures(events, evidence.gateway_key) {
        return report;
    }
    match evidence.head {
        Some(head) => {
            if let Some(report) = check_head(head, evidence) {
                return report;
            }
        }
        None => {
            if let Some(report) = check_unsealed(evidence) {
                return report;
            }
        }
    }
    if let Some(report) = check_metadata(evidence) {
        return report;
    }
    ChainReport::Intact {
        count: events.len(),
        sealed: evidence.head.is_some(),
    }
}

/// A record without KMS's signed head: whatever its status says, an ended (or expired) session
/// must end with the gateway's signed end and have KMS's head. What stays unsealed is an active
/// session within its signed expiry, or an ended one nobody ever connected through (no events):
/// `Intact { sealed: false }`, which the CLI does not call intact.
fn check_unsealed(evidence: &Evidence<'_>) -> Option<ChainReport> {
    let events = evidence.events;
    let truncated = |reason: String| {
        Some(ChainReport::Truncated {
            stored: events.len() as u64,
            expected: None,
            reason,
        })
    };
    let ended = events.last().is_some_and(|e| is_kind(e, "session_ended"));
    if evidence.metadata.status == SessionStatus::Active {
        if ended {
            // The gateway stopped first (its clock saw the expiry, or it restarted); KMS has
            // not marked the end yet.
            return None;
        }
        let checked_at = events
            .iter()
            .filter_map(|e| e.get("time").and_then(Value::as_str))
            .filter_map(crate::time::parse_rfc3339)
            .fold(evidence.checked_at, SystemTime::max);
        let signed_expiry = events
            .iter()
            .rev()
            .find(|e| is_kind(e, "session_started"))
            .and_then(|e| e.get("expires_at").and_then(Value::as_str))
            .and_then(crate::time::parse_rfc3339);
        return match signed_expiry {
            Some(expiry) if expiry <= checked_at => truncated(format!(
                "the record says the session is active and has no end, but the gateway signed \
                 its expiry as {}, before {}: events are missing from the end (and its \
                 status was edited)",
                crate::time::format_rfc3339(expiry),
                crate::time::format_rfc3339(checked_at)
            )),
            _ => None,
        };
    }
    if events.is_empty() {
        return None;
    }
    if ended {
        return truncated(
            "KMS head missing: the session ended but KMS holds no signed head for it; events \
             after the last stored one cannot be ruled out"
                .to_owned(),
        );
    }
    truncated(
        "the session ended but its record lacks the gateway's signed end: events are missing \
         from the end"
            .to_owned(),
    )
}

/// The chain and every event's signature with `key`: what KMS checks before it signs a head
/// over the events. `None` when both hold.
#[cfg(feature = "server")]
pub(crate) fn check_events(events: &[Value], key: &PublicKey) -> Option<ChainReport> {
    let chain = verify_chain_json(events);
    if !chain.is_intact() {
        return Some(chain);
    }
    check_signatures(events, Some(key))
}

fn check_signatures(events: &[Value], key: Option<&PublicKey>) -> Option<ChainReport> {
    for (seq, event) in (1u64..).zip(events) {
        let text = |k| event.get(k).and_then(Value::as_str);
        let altered = |reason: String| ChainReport::Altered {
            seq: Some(seq),
            event_id: Some(text("id").unwrap_or_default().to_owned()),
            reason,
        };
        let Some(key) = key else {
            return Some(altered(
                "no gateway key is known to check the events' signatures".to_owned(),
            ));
        };
        let signed = text("sig")
            .is_some_and(|sig| key.verify(&event_message(text("hash").unwrap_or_default()), sig));
        if !signed {
            return Some(altered(format!(
                "the event is not signed by the gateway's key {} (altered and re-hashed, or \
                 inserted)",
                key.fingerprint()
            )));
        }
    }
    None
}

fn check_head(signed: &SignedHead, evidence: &Evidence<'_>) -> Option<ChainReport> {
    let head = &signed.head;
    let altered = |seq: Option<u64>, reason: String| {
        let event_id = seq
            .and_then(|s| usize::try_from(s).ok())
            .and_then(|s| evidence.events.get(s.wrapping_sub(1)))
            .and_then(|e| e.get("id").and_then(Value::as_str))
            .map(str::to_owned);
        Some(ChainReport::Altered {
            seq,
            event_id,
            reason,
        })
    };
    if head.format != HEAD_FORMAT || !signed.verify(evidence.kms_key) {
        return altered(
            None,
            format!(
                "the session's signed head does not verify with KMS's key {}",
                evidence.kms_key.fingerprint()
            ),
        );
    }
    if head.session.id != evidence.metadata.id {
        return altered(None, "the signed head is another session's".to_owned());
    }
    if evidence.gateway_key.is_some_and(|k| *k != head.gateway_key) {
        return altered(
            None,
            format!(
                "KMS signed the head over events of gateway key {}, not the one given",
                head.gateway_key.fingerprint()
            ),
        );
    }
    let stored = evidence.events.len() as u64;
    if head.last_seq > stored {
        return Some(ChainReport::Truncated {
            stored,
            expected: Some(head.last_seq),
            reason: format!(
                "KMS signed the session's head at event {}, but only {stored} events are stored",
                head.last_seq
            ),
        });
    }
    if head.last_seq < stored {
        return altered(
            Some(head.last_seq + 1),
            format!(
                "an event after the end KMS signed (the signed head is event {})",
                head.last_seq
            ),
        );
    }
    let last = evidence.events.last().and_then(|e| e.get("hash"));
    if head.last_seq > 0 && last.and_then(Value::as_str) != Some(head.last_hash.as_str()) {
        return altered(
            Some(head.last_seq),
            "the last event is not the one KMS signed".to_owned(),
        );
    }
    None
}

fn check_metadata(evidence: &Evidence<'_>) -> Option<ChainReport> {
    let now = evidence.metadata.fields();
    let mut changed: Vec<String> = Vec::new();
    let mut details: Vec<String> = Vec::new();
    let mut compare = |signer: &str, signed: &[(&'static str, Value)]| {
        for (name, value) in signed {
            // What the signer bound and the record no longer holds counts as `null`: dropping
            // a bound field (say, the binding from an exported bundle) is a change too.
            let held = now
                .iter()
                .find(|(n, _)| n == name)
                .map_or(&Value::Null, |(_, held)| held);
            if held != value && !changed.iter().any(|c| c == name) {
                changed.push((*name).to_owned());
                details.push(format!("{name}: {signer} signed {value}, it is now {held}"));
            }
        }
    };
    for started in evidence
        .events
        .iter()
        .filter(|e| is_kind(e, "session_started"))
    {
        compare("the gateway", &started_fields(started));
    }
    if let Some(end) = evidence
        .events
        .iter()
        .rev()
        .find(|e| is_kind(e, "session_ended"))
    {
        compare("the gateway's end", &ended_fields(end, evidence.metadata));
    }
    if let Some(head) = evidence.head {
        compare("KMS", &head.head.session.fields());
    }
    if changed.is_empty() {
        return None;
    }
    Some(ChainReport::MetadataChanged {
        fields: changed,
        reason: details.join("; "),
    })
}

fn is_kind(event: &Value, kind: &str) -> bool {
    event.get("type").and_then(Value::as_str) == Some(kind)
}

/// How far KMS's end time may be from the one the gateway signed: both are KMS's own time, but
/// the event keeps it at millisecond and the session at second precision.
const END_TIME_TOLERANCE: std::time::Duration = std::time::Duration::from_secs(2);

/// The end a `session_ended` event binds: KMS's status, cause and end time as the gateway
/// learnt them when it stopped, when KMS had already ended the session (`ended_at` present).
/// An end the gateway saw first (its clock, or it lost KMS), or written before ends carried
/// KMS's view, binds nothing: what KMS decided later is bound by its signed head only. An end
/// time within [`END_TIME_TOLERANCE`] of what KMS holds counts as the same.
fn ended_fields(event: &Value, now: &SessionMetadata) -> Vec<(&'static str, Value)> {
    let Some(signed_end) = event.get("ended_at").and_then(Value::as_str) else {
        return Vec::new();
    };
    let mut fields = vec![(
        "status",
        event.get("status").cloned().unwrap_or(Value::Null),
    )];
    if let Some(cause) = event.get("end_cause") {
        fields.push(("end_cause", cause.clone()));
    }
    let close = match (crate::time::parse_rfc3339(signed_end), now.ended_at) {
        (Some(signed), Some(held)) => {
            let gap = signed
                .duration_since(held)
                .or_else(|_| held.duration_since(signed));
            gap.is_ok_and(|gap| gap <= END_TIME_TOLERANCE)
        }
        _ => false,
    };
    let ended_at = match (close, now.ended_at) {
        // Within the tolerance: compare KMS's own value, so that it matches.
        (true, Some(held)) => Value::from(crate::time::format_rfc3339(held)),
        _ => Value::from(signed_end),
    };
    fields.push(("ended_at", ended_at));
    fields
}

/// The metadata a `session_started` event binds. Events written before the metadata was bound
/// (no `created_at`) bind the names only.
fn started_fields(event: &Value) -> Vec<(&'static str, Value)> {
    let mut fields = Vec::new();
    for name in ["session_id", "user", "resource", "account", "gateway"] {
        let key = if name == "session_id" { "id" } else { name };
        fields.push((key, event.get(name).cloned().unwrap_or(Value::Null)));
    }
    if event.get("created_at").is_some() {
        for name in ["reason", "created_at", "expires_at"] {
            fields.push((name, event.get(name).cloned().unwrap_or(Value::Null)));
        }
    }
    // Bound since the project, user id and client were signed; an unreadable binding binds
    // what cannot match, so that an edited one is a change.
    if let Some(binding) = event.get("binding") {
        match serde_json::from_value::<SessionBinding>(binding.clone()) {
            Ok(binding) => fields.extend(record::binding_fields(&binding)),
            Err(_) => fields.push(("project_id", binding.clone())),
        }
    }
    fields
}

#[cfg(test)]
#[path = "evidence_tests.rs"]
mod tests;
