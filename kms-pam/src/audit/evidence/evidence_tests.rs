//! The verifier against the database attacker: every way of editing a signed record is told
//! apart.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::*;
use crate::audit::evidence::chain::event_hash;
use crate::audit::evidence::signing::SigningKey;
use crate::audit::{
    AuditEvent, AuditEventKind, AuditSink, ChainingSink, MemoryAuditSink, RequestFinished,
};
use crate::session::{EndCause, Session, SessionBinding, SessionId, SessionView};

struct Signed {
    gateway: Arc<SigningKey>,
    kms: SigningKey,
    metadata: SessionMetadata,
    events: Vec<Value>,
    head: SignedHead,
}

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

fn view() -> SessionView {
    SessionView {
        session: Session {
            id: SessionId::new("s-1"),
            user: "alice".into(),
            resource: "prod".into(),
            account: "admin".into(),
            gateway: "gw".into(),
            status: SessionStatus::Ended,
            created_at: at(0),
            expires_at: at(3600),
            ended_at: Some(at(60)),
            reason: Some("INC-42".into()),
            binding: Some(
                SessionBinding::new("p-default", "u-alice")
                    .with_client(Some("192.0.2.7".into()), Some("kms-pam/0.1".into())),
            ),
        },
        end_cause: Some(EndCause::User),
        identity: None,
    }
}

fn generate() -> SigningKey {
    SigningKey::generate().unwrap().0
}

/// A session the gateway recorded (started, three requests, ended) and KMS sealed.
fn signed_session() -> Signed {
    let (gateway, kms) = (Arc::new(generate()), generate());
    let view = view();
    let sink = ChainingSink::new(MemoryAuditSink::new()).with_signer(gateway.clone());
    let s = &view.session;
    let record = |kind| sink.record(AuditEvent::now(s.id.clone(), kind)).unwrap();
    record(AuditEventKind::SessionStarted {
        user: s.user.clone(),
        resource: s.resource.clone(),
        account: s.account.clone(),
        gateway: s.gateway.clone(),
        reason: s.reason.clone(),
        created_at: Some(s.created_at),
        expires_at: Some(s.expires_at),
        binding: s.binding.clone().map(Box::new),
    });
    for request_id in 1..=3 {
        record(AuditEventKind::RequestFinished(RequestFinished {
            request_id,
            status: 200,
            bytes_in: 0,
            bytes_out: 10,
            duration_ms: 1,
            error: None,
        }));
    }
    // As KMS told the gateway when it stopped: ended by the user at 60.
    record(AuditEventKind::SessionEnded {
        status: SessionStatus::Ended,
        ended_at: s.ended_at,
        end_cause: Some("user".into()),
    });
    let events: Vec<Value> = sink
        .inner()
        .events()
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();
    let metadata = SessionMetadata::from_view(&view);
    let head = SessionHead {
        format: HEAD_FORMAT.into(),
        session: metadata.clone(),
        last_seq: 5,
        last_hash: events[4]["hash"].as_str().unwrap().into(),
        gateway_key: gateway.public_key(),
        sealed_at: at(61),
    };
    let head = SignedHead::sign(head, &kms).unwrap();
    Signed {
        gateway,
        kms,
        metadata,
        events,
        head,
    }
}

impl Signed {
    fn check(&self) -> ChainReport {
        self.check_with(&self.events, Some(&self.head), &self.metadata)
    }

    fn check_with(
        &self,
        events: &[Value],
        head: Option<&SignedHead>,
        metadata: &SessionMetadata,
    ) -> ChainReport {
        self.check_at(events, head, metadata, at(100))
    }

    fn check_at(
        &self,
        events: &[Value],
        head: Option<&SignedHead>,
        metadata: &SessionMetadata,
        checked_at: SystemTime,
    ) -> ChainReport {
        let (gateway, kms) = (self.gateway.public_key(), self.kms.public_key());
        verify_session(&Evidence {
            metadata,
            events,
            head,
            gateway_key: Some(&gateway),
            kms_key: &kms,
            checked_at,
        })
    }
}

/// Re-links `events` from `from` on, as an attacker recomputing the hashes would.
fn rehash(events: &mut [Value], from: usize) {
    for i in from..events.len() {
        if i > 0 {
            let prev = events[i - 1]["hash"].clone();
            events[i]["prev_hash"] = prev;
        }
        let event: AuditEvent = serde_json::from_value(events[i].clone()).unwrap();
        events[i]["hash"] = Value::from(event_hash(&event).unwrap());
    }
}

#[test]
fn an_untouched_record_is_intact_and_sealed() {
    let session = signed_session();
    assert_eq!(
        session.check(),
        ChainReport::Intact {
            count: 5,
            sealed: true
        }
    );
}

#[test]
fn a_rewritten_and_rehashed_event_is_altered_at_its_seq() {
    let session = signed_session();
    let mut events = session.events.clone();
    events[2]["status"] = Value::from(403);
    rehash(&mut events, 2);
    match session.check_with(&events, Some(&session.head), &session.metadata) {
        ChainReport::Altered {
            seq: Some(3),
            event_id: Some(id),
            reason,
        } => {
            assert_eq!(id, events[2]["id"].as_str().unwrap());
            assert!(reason.contains("not signed by the gateway"), "{reason}");
        }
        other => panic!("expected altered at 3, got {other:?}"),
    }
    // Without the signatures at all, it is the same.
    for event in &mut events {
        event.as_object_mut().unwrap().remove("sig");
    }
    assert!(matches!(
        session.check_with(&events, Some(&session.head), &session.metadata),
        ChainReport::Altered { seq: Some(1), .. }
    ));
}

#[test]
fn a_deleted_tail_or_every_event_is_truncated() {
    let session = signed_session();
    let tail = &session.events[..3];
    assert_eq!(
        session.check_with(tail, Some(&session.head), &session.metadata),
        ChainReport::Truncated {
            stored: 3,
            expected: Some(5),
            reason: "KMS signed the session's head at event 5, but only 3 events are stored".into()
        }
    );
    assert!(matches!(
        session.check_with(&[], Some(&session.head), &session.metadata),
        ChainReport::Truncated {
            stored: 0,
            expected: Some(5),
            ..
        }
    ));
    // Head and end gone too: an ended session without the gateway's signed end.
    let report = session.check_with(tail, None, &session.metadata);
    assert!(
        matches!(&report, ChainReport::Truncated { expected: None, reason, .. }
            if reason.contains("lacks the gateway's signed end")),
        "{report:?}"
    );
    // The end kept but the head deleted: KMS's head is missing.
    let report = session.check_with(&session.events, None, &session.metadata);
    assert!(
        matches!(&report, ChainReport::Truncated { reason, .. } if reason.contains("no signed head")),
        "{report:?}"
    );
}

#[test]
fn edited_metadata_is_named_field_by_field() {
    let session = signed_session();
    let mut metadata = session.metadata.clone();
    metadata.user = "mallory".into();
    match session.check_with(&session.events, Some(&session.head), &metadata) {
        ChainReport::MetadataChanged { fields, reason } => {
            assert_eq!(fields, ["user"]);
            assert!(reason.contains("\"alice\""), "{reason}");
        }
        other => panic!("expected metadata changed, got {other:?}"),
    }
    let mut metadata = session.metadata.clone();
    metadata.reason = Some("routine".into());
    metadata.end_cause = Some("expiry".into());
    assert!(matches!(
        session.check_with(&session.events, Some(&session.head), &metadata),
        ChainReport::MetadataChanged { fields, .. } if fields == ["reason", "end_cause"]
    ));
    // Before KMS signed a head (an active session), the gateway's signed start still binds
    // who and why.
    let mut active = session.metadata.clone();
    active.status = SessionStatus::Active;
    active.reason = None;
    assert!(matches!(
        session.check_with(&session.events[..4], None, &active),
        ChainReport::MetadataChanged { fields, .. } if fields == ["reason"]
    ));
}

#[test]
fn a_session_moved_to_another_project_user_or_client_is_metadata_changed() {
    let session = signed_session();
    let moved = |edit: &dyn Fn(&mut SessionBinding)| {
        let mut metadata = session.metadata.clone();
        edit(metadata.binding.as_mut().unwrap());
        metadata
    };
    type Edit<'a> = &'a dyn Fn(&mut SessionBinding);
    let cases: [(Edit<'_>, &str); 4] = [
        (&|b| b.project_id = "p-other".into(), "project_id"),
        (&|b| b.user_id = "u-mallory".into(), "user_id"),
        (
            &|b| b.client_address = Some("10.9.9.9".into()),
            "client_address",
        ),
        (&|b| b.user_agent = None, "user_agent"),
    ];
    for (edit, field) in cases {
        let metadata = moved(edit);
        // Sealed: KMS's head and the gateway's start both bind it.
        assert!(
            matches!(
                session.check_with(&session.events, Some(&session.head), &metadata),
                ChainReport::MetadataChanged { ref fields, .. } if fields == &[field]
            ),
            "{field}"
        );
        // Active (no head yet): the gateway's signed start alone binds it.
        assert!(
            matches!(
                session.check_with(&session.events[..4], None, &active(&metadata)),
                ChainReport::MetadataChanged { ref fields, .. } if fields == &[field]
            ),
            "{field}"
        );
    }
    // A binding dropped (from an exported bundle, say) is a change of all four.
    let mut dropped = session.metadata.clone();
    dropped.binding = None;
    match session.check_with(&session.events, Some(&session.head), &dropped) {
        ChainReport::MetadataChanged { fields, reason } => {
            assert_eq!(
                fields,
                ["project_id", "user_id", "client_address", "user_agent"]
            );
            assert!(reason.contains("\"p-default\""), "{reason}");
        }
        other => panic!("expected metadata changed, got {other:?}"),
    }
    // Records signed before bindings existed bind none: nothing to compare, still intact.
    let mut old = signed_session();
    old.metadata.binding = None;
    let mut unbound = old.events.clone();
    unbound[0].as_object_mut().unwrap().remove("binding");
    let unbound = resigned(&old, unbound);
    let mut head = old.head.head.clone();
    head.session.binding = None;
    head.last_hash = unbound[4]["hash"].as_str().unwrap().into();
    let head = SignedHead::sign(head, &old.kms).unwrap();
    assert!(old
        .check_with(&unbound, Some(&head), &old.metadata)
        .is_intact());
}

#[test]
fn an_edited_end_is_caught_by_the_gateways_signed_end_even_under_a_new_head() {
    let session = signed_session();
    // Head deleted and signed again by KMS from the edited database: status, cause and end
    // time are still bound by what the gateway learnt from KMS when it stopped.
    let mut edited = session.metadata.clone();
    edited.status = SessionStatus::Expired;
    edited.end_cause = Some("expiry".into());
    edited.ended_at = Some(at(3600));
    let resealed = SignedHead::sign(
        SessionHead {
            session: edited.clone(),
            ..session.head.head.clone()
        },
        &session.kms,
    )
    .unwrap();
    let report = session.check_with(&session.events, Some(&resealed), &edited);
    assert!(
        matches!(&report, ChainReport::MetadataChanged { fields, reason }
            if *fields == ["status", "end_cause", "ended_at"]
                && reason.contains("the gateway's end signed \"ended\"")),
        "{report:?}"
    );
    // Within the tolerance, the end time is the same.
    let mut close = session.metadata.clone();
    close.ended_at = Some(at(61));
    let head = SignedHead::sign(
        SessionHead {
            session: close.clone(),
            ..session.head.head.clone()
        },
        &session.kms,
    )
    .unwrap();
    assert!(session
        .check_with(&session.events, Some(&head), &close)
        .is_intact());
    // An end the gateway saw first (no KMS view in it) binds no status: KMS's head does.
    let mut events = session.events.clone();
    for field in ["ended_at", "end_cause"] {
        events[4].as_object_mut().unwrap().remove(field);
    }
    let events = resigned(&session, events);
    let mut expired = session.metadata.clone();
    expired.status = SessionStatus::Expired;
    let head = SignedHead::sign(
        SessionHead {
            session: expired.clone(),
            last_hash: events[4]["hash"].as_str().unwrap().into(),
            ..session.head.head.clone()
        },
        &session.kms,
    )
    .unwrap();
    assert!(session
        .check_with(&events, Some(&head), &expired)
        .is_intact());
}

#[test]
fn a_forged_head_does_not_verify() {
    let session = signed_session();
    let mut forged = session.head.clone();
    forged.head.last_seq = 3;
    assert!(matches!(
        session.check_with(&session.events[..3], Some(&forged), &session.metadata),
        ChainReport::Altered { seq: None, .. }
    ));
    // Signed by another key (the attacker's own "KMS").
    let other = generate();
    let resigned = SignedHead::sign(forged.head, &other).unwrap();
    assert!(matches!(
        session.check_with(&session.events[..3], Some(&resigned), &session.metadata),
        ChainReport::Altered { seq: None, .. }
    ));
}

fn active(metadata: &SessionMetadata) -> SessionMetadata {
    let mut active = metadata.clone();
    active.status = SessionStatus::Active;
    active.ended_at = None;
    active.end_cause = None;
    active
}

#[test]
fn an_active_session_within_its_signed_expiry_is_unsealed_not_sealed() {
    let session = signed_session();
    let active = active(&session.metadata);
    // The events are timed now; the signed expiry is an hour after `at(0)`. Checked before it:
    // nothing says the session should have ended.
    let events = events_at(&session, at(10), 4);
    assert_eq!(
        session.check_at(&events, None, &active, at(100)),
        ChainReport::Intact {
            count: 4,
            sealed: false
        }
    );
}

/// The first `n` events of the session, re-timed to `time` and re-signed (as the gateway would
/// have signed them then).
fn events_at(session: &Signed, time: SystemTime, n: usize) -> Vec<Value> {
    let mut events = session.events[..n].to_vec();
    for event in &mut events {
        event["time"] = Value::from(humantime::format_rfc3339_millis(time).to_string());
    }
    resigned(session, events)
}

/// `events` re-hashed and signed with the session's gateway key.
fn resigned(session: &Signed, mut events: Vec<Value>) -> Vec<Value> {
    rehash(&mut events, 0);
    for event in &mut events {
        let hash = event["hash"].as_str().unwrap().to_owned();
        event["sig"] = Value::from(session.gateway.sign(&event_message(&hash)));
    }
    events
}

#[test]
fn a_head_deleted_with_the_tail_and_the_status_set_active_is_truncated_past_the_signed_expiry() {
    let session = signed_session();
    let active = active(&session.metadata);
    let events = events_at(&session, at(10), 3);
    // Checked (or exported) after the expiry the gateway signed: an active session cannot be.
    let report = session.check_at(&events, None, &active, at(3700));
    assert!(
        matches!(&report, ChainReport::Truncated { expected: None, reason, .. }
            if reason.contains("signed its expiry")),
        "{report:?}"
    );
    // A `checked_at` moved back does not help once a signed event is later than the expiry.
    let late = events_at(&session, at(3601), 3);
    assert!(matches!(
        session.check_at(&late, None, &active, at(100)),
        ChainReport::Truncated { .. }
    ));
}

#[test]
fn an_ended_session_without_events_or_head_is_never_sealed() {
    let session = signed_session();
    // Every event and the head deleted: the verifier cannot tell it from a session nobody
    // used, so it is not sealed (the CLI does not call it intact).
    assert_eq!(
        session.check_with(&[], None, &session.metadata),
        ChainReport::Intact {
            count: 0,
            sealed: false
        }
    );
    // The end kept and the head deleted names the missing head.
    let report = session.check_with(&session.events, None, &session.metadata);
    assert!(
        matches!(&report, ChainReport::Truncated { reason, .. } if reason.contains("KMS head missing")),
        "{report:?}"
    );
}

#[test]
fn a_bundle_verifies_offline_only_with_the_right_keys_and_unedited() {
    let session = signed_session();
    let bundle = SessionBundle {
        format: BUNDLE_FORMAT.into(),
        session: session.metadata.clone(),
        events: session.events.clone(),
        head: Some(session.head.clone()),
        gateway_key: Some(session.gateway.public_key()),
        kms_key: session.kms.public_key(),
        exported_at: at(100),
    };
    let json = serde_json::to_string_pretty(&bundle).unwrap();
    let read: SessionBundle = serde_json::from_str(&json).unwrap();
    let (gateway, kms) = (session.gateway.public_key(), session.kms.public_key());
    assert!(read.verify(&gateway, &kms).is_intact());
    let stranger = generate().public_key();
    assert!(!read.verify(&stranger, &kms).is_intact());
    assert!(!read.verify(&gateway, &stranger).is_intact());
    let edited: SessionBundle =
        serde_json::from_str(&json.replacen("\"alice\"", "\"bob\"", 1)).unwrap();
    assert!(!edited.verify(&gateway, &kms).is_intact());
}
