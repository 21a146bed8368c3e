use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use super::*;
use crate::audit::{MemoryAuditSink, RequestFinished};
use crate::session::SessionStatus;

fn finished(session: &str, request_id: u64) -> AuditEvent {
    AuditEvent::now(
        SessionId::new(session),
        AuditEventKind::RequestFinished(RequestFinished {
            request_id,
            status: 200,
            bytes_in: 0,
            bytes_out: 10,
            duration_ms: 3,
            error: None,
        }),
    )
}

fn ended(session: &str) -> AuditEvent {
    AuditEvent::now(
        SessionId::new(session),
        AuditEventKind::SessionEnded {
            status: SessionStatus::Ended,
            ended_at: None,
            end_cause: None,
        },
    )
}

/// Five chained events of session `s`.
fn chained(n: u64) -> Vec<AuditEvent> {
    let sink = ChainingSink::new(MemoryAuditSink::new());
    for i in 0..n {
        sink.record(finished("s", i)).unwrap();
    }
    sink.inner().events()
}

fn broken_at(report: &ChainReport) -> (u64, &str) {
    match report {
        ChainReport::Altered {
            seq: Some(seq),
            reason,
            ..
        } => (*seq, reason.as_str()),
        other => panic!("expected a broken chain, got {other:?}"),
    }
}

#[test]
fn links_are_assigned_per_session_starting_at_genesis() {
    let sink = ChainingSink::new(MemoryAuditSink::new());
    for (session, id) in [("a", 1), ("b", 2), ("a", 3), ("a", 4), ("b", 5)] {
        sink.record(finished(session, id)).unwrap();
    }
    let events = sink.inner().events();
    let seqs: Vec<(&str, u64)> = events
        .iter()
        .map(|e| (e.session_id.as_str(), e.seq))
        .collect();
    assert_eq!(
        seqs,
        [("a", 1), ("b", 1), ("a", 2), ("a", 3), ("b", 2)],
        "seq counts per session"
    );
    assert_eq!(events[0].prev_hash, GENESIS_HASH);
    assert_eq!(events[2].prev_hash, events[0].hash);
    assert_eq!(events[0].hash.len(), 64);
    let a: Vec<_> = events
        .iter()
        .filter(|e| e.session_id.as_str() == "a")
        .cloned()
        .collect();
    assert_eq!(
        verify_chain(&a),
        ChainReport::Intact {
            count: 3,
            sealed: false
        }
    );
    assert_eq!(
        verify_chain(&[]),
        ChainReport::Intact {
            count: 0,
            sealed: false
        }
    );
}

#[test]
fn the_hash_is_sha256_over_prev_bytes_and_sorted_json_without_hash() {
    let mut event = finished("s", 7);
    event.id = uuid::Uuid::nil();
    event.time = SystemTime::UNIX_EPOCH;
    event.seq = 1;
    event.prev_hash = GENESIS_HASH.to_owned();
    event.hash = "ignored".to_owned();
    let canonical = concat!(
        r#"{"bytes_in":0,"bytes_out":10,"duration_ms":3,"error":null,"#,
        r#""id":"00000000-0000-0000-0000-000000000000","#,
        r#""prev_hash":"0000000000000000000000000000000000000000000000000000000000000000","#,
        r#""request_id":7,"seq":1,"session_id":"s","status":200,"#,
        r#""time":"1970-01-01T00:00:00.000Z","type":"request_finished"}"#
    );
    let mut input = vec![0u8; 32];
    input.extend_from_slice(canonical.as_bytes());
    let expected = encode_hex(digest::digest(&digest::SHA256, &input).as_ref());
    assert_eq!(event_hash(&event).unwrap(), expected);
}

#[test]
fn verification_survives_json_round_trips_and_key_order() {
    let events = chained(4);
    let lines: Vec<String> = events
        .iter()
        .map(|e| serde_json::to_string(e).unwrap())
        .collect();
    let back: Vec<AuditEvent> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        verify_chain(&back),
        ChainReport::Intact {
            count: 4,
            sealed: false
        }
    );
    // A store that keeps objects with reversed keys still verifies.
    let reversed: Vec<Value> = lines
        .iter()
        .map(|l| {
            let Value::Object(map) = serde_json::from_str::<Value>(l).unwrap() else {
                unreachable!()
            };
            let mut entries: Vec<_> = map.into_iter().collect();
            entries.reverse();
            Value::Object(entries.into_iter().collect())
        })
        .collect();
    assert_eq!(
        verify_chain_json(&reversed),
        ChainReport::Intact {
            count: 4,
            sealed: false
        }
    );
}

#[test]
fn verification_finds_the_first_broken_link() {
    let events = chained(5);

    let mut tampered = events.clone();
    if let AuditEventKind::RequestFinished(f) = &mut tampered[2].kind {
        f.status = 500;
    }
    tampered[4].seq = 9; // a later break must not hide the first one
    let report = verify_chain(&tampered);
    assert_eq!(
        broken_at(&report),
        (3, "the content does not match its hash (altered)")
    );
    match report {
        ChainReport::Altered { event_id, .. } => {
            assert_eq!(event_id, Some(events[2].id.to_string()))
        }
        other => panic!("expected a broken chain, got {other:?}"),
    }

    let mut gap = events.clone();
    gap.remove(1);
    let report = verify_chain(&gap);
    let (seq, reason) = broken_at(&report);
    assert_eq!(seq, 2);
    assert!(reason.contains("found 3: events are missing"), "{reason}");

    let mut reordered = events.clone();
    reordered.swap(1, 3);
    assert!(broken_at(&verify_chain(&reordered)).1.contains("found 4"));

    let mut repeated = events.clone();
    repeated.insert(3, events[2].clone());
    assert!(broken_at(&verify_chain(&repeated))
        .1
        .contains("expected seq 4, found 3: out of order or repeated"));

    // A forged link: right seq, hash recomputed, but prev_hash not the previous event's.
    let mut forged = events.clone();
    forged[3].prev_hash = GENESIS_HASH.to_owned();
    forged[3].hash = event_hash(&forged[3]).unwrap();
    assert_eq!(
        broken_at(&verify_chain(&forged)),
        (4, "prev_hash does not match the hash of event 3")
    );

    let mut truncated_front = events.clone();
    truncated_front.remove(0);
    assert_eq!(broken_at(&verify_chain(&truncated_front)).0, 1);

    let mut foreign = events.clone();
    foreign[1].session_id = SessionId::new("other");
    assert!(broken_at(&verify_chain(&foreign))
        .1
        .contains("another session"));

    let mut unchained = events;
    unchained.push(finished("s", 99));
    assert!(broken_at(&verify_chain(&unchained))
        .1
        .contains("not chained"));
}

#[test]
fn resume_continues_a_chain_across_a_restart() {
    let first = chained(3);
    let last = first.last().unwrap();
    let heads = HashMap::from([(
        SessionId::new("s"),
        ChainHead {
            seq: last.seq,
            hash: last.hash.clone(),
        },
    )]);
    let restarted = ChainingSink::resume(MemoryAuditSink::new(), heads);
    restarted.record(finished("s", 10)).unwrap();
    let mut all = first;
    all.extend(restarted.inner().events());
    assert_eq!(
        verify_chain(&all),
        ChainReport::Intact {
            count: 4,
            sealed: false
        }
    );
}

#[test]
fn an_ended_session_is_forgotten_after_the_grace() {
    let kept = ChainingSink::new(MemoryAuditSink::new());
    kept.record(finished("s", 1)).unwrap();
    kept.record(ended("s")).unwrap();
    // Within the grace the closed chain is still known: a late event is refused, not started
    // over at seq 1.
    assert!(kept.record(finished("s", 2)).is_err());
    assert_eq!(kept.head(&SessionId::new("s")).unwrap().seq, 2);
    assert_eq!(
        verify_chain(&kept.inner().events()),
        ChainReport::Intact {
            count: 2,
            sealed: false
        }
    );

    let dropped = ChainingSink::new(MemoryAuditSink::new()).with_ended_grace(Duration::ZERO);
    dropped.record(finished("s", 1)).unwrap();
    dropped.record(ended("s")).unwrap();
    dropped.record(finished("t", 1)).unwrap();
    assert_eq!(dropped.head(&SessionId::new("s")), None);
}

/// Refuses its second event.
#[derive(Default)]
struct RefusesSecond {
    calls: AtomicUsize,
    kept: MemoryAuditSink,
}

#[async_trait]
impl AuditSink for RefusesSecond {
    fn record(&self, event: AuditEvent) -> Result<(), AuditError> {
        if self.calls.fetch_add(1, Ordering::Relaxed) == 1 {
            return Err(AuditError::full("test"));
        }
        self.kept.record(event)
    }

    async fn flush(&self) -> Result<(), AuditError> {
        Ok(())
    }
}

#[tokio::test]
async fn a_refused_event_takes_no_seq_and_flush_reaches_the_inner_sink() {
    let sink = ChainingSink::new(RefusesSecond::default());
    sink.record(finished("s", 1)).unwrap();
    assert!(matches!(
        sink.record(finished("s", 2)),
        Err(AuditError::Full(_))
    ));
    sink.record(finished("s", 3)).unwrap();
    sink.flush().await.unwrap();
    let kept = sink.inner().kept.events();
    assert_eq!(kept.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(
        verify_chain(&kept),
        ChainReport::Intact {
            count: 2,
            sealed: false
        }
    );
}

#[test]
fn hex_helpers_round_trip_and_refuse_bad_input() {
    let bytes: Vec<u8> = (0..32).collect();
    let hex = encode_hex(&bytes);
    assert_eq!(decode_hex32(&hex).unwrap().to_vec(), bytes);
    assert_eq!(decode_hex32("00"), None);
    assert_eq!(decode_hex32(&"zz".repeat(32)), None);
    assert_eq!(decode_hex32(&"é".repeat(32)), None);
}

/// The report is also the KMS's `verify` answer: the server writes it, the CLI reads it back.
#[test]
fn reports_read_back_from_their_json_and_unknown_results_stay_readable() {
    let altered = ChainReport::Altered {
        seq: Some(3),
        event_id: Some("e3".into()),
        reason: "altered".into(),
    };
    let truncated = ChainReport::Truncated {
        stored: 4,
        expected: Some(9),
        reason: "gone".into(),
    };
    let changed = ChainReport::MetadataChanged {
        fields: vec!["user".into()],
        reason: "edited".into(),
    };
    let intact = ChainReport::Intact {
        count: 12,
        sealed: true,
    };
    for report in [intact.clone(), altered, truncated, changed] {
        let json = serde_json::to_string(&report).unwrap();
        assert_eq!(serde_json::from_str::<ChainReport>(&json).unwrap(), report);
    }
    assert_eq!(
        serde_json::to_value(intact).unwrap(),
        serde_json::json!({"result": "intact", "count": 12, "sealed": true})
    );
    let newer: ChainReport =
        serde_json::from_str(r#"{"result":"forged","seq":4,"expected":9}"#).unwrap();
    assert_eq!(newer, ChainReport::Unknown);
}

#[test]
fn an_ended_chain_refuses_late_events_until_the_session_starts_again() {
    let sink = ChainingSink::new(MemoryAuditSink::new());
    sink.record(finished("s", 1)).unwrap();
    let end = AuditEvent::now(
        SessionId::new("s"),
        AuditEventKind::SessionEnded {
            status: crate::session::SessionStatus::Ended,
            ended_at: None,
            end_cause: None,
        },
    );
    sink.record(end).unwrap();
    assert!(sink.record(finished("s", 2)).is_err(), "closed by its end");
    assert_eq!(sink.head(&SessionId::new("s")).unwrap().seq, 2);
    let again = AuditEvent::now(
        SessionId::new("s"),
        AuditEventKind::SessionStarted {
            user: "alice".into(),
            resource: "prod".into(),
            account: "admin".into(),
            gateway: "gw".into(),
            reason: None,
            created_at: None,
            expires_at: None,
            binding: None,
        },
    );
    sink.record(again).unwrap();
    sink.record(finished("s", 3)).unwrap();
    assert_eq!(sink.head(&SessionId::new("s")).unwrap().seq, 4);
    assert!(verify_chain(&sink.inner().events()).is_intact());
}

#[test]
fn a_signer_signs_every_link_and_the_signature_is_outside_the_hash() {
    let (key, _) = crate::audit::evidence::signing::SigningKey::generate().unwrap();
    let public = key.public_key();
    let sink = ChainingSink::new(MemoryAuditSink::new()).with_signer(Arc::new(key));
    sink.record(finished("s", 1)).unwrap();
    let event = sink.inner().events().remove(0);
    assert!(public.verify(
        &crate::audit::evidence::signing::event_message(&event.hash),
        &event.sig
    ));
    let mut unsigned = event.clone();
    unsigned.sig.clear();
    assert_eq!(event_hash(&unsigned).unwrap(), event.hash);
}
