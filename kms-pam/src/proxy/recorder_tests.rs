use std::sync::{Arc, Mutex};
use std::time::Duration;

use tungstenite::protocol::frame::coding::{Data, OpCode};
use tungstenite::protocol::frame::FrameHeader;

use super::*;
use crate::audit::{recordings, replay};
use crate::audit::{AuditEvent, RecordingEnded, RecordingGap};
use crate::kube::StreamKind;
use crate::session::SessionId;

fn message(channel: u8, data: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let header = FrameHeader {
        is_final: true,
        rsv1: false,
        rsv2: false,
        rsv3: false,
        opcode: OpCode::Data(Data::Binary),
        mask,
    };
    let mut payload = vec![channel];
    payload.extend_from_slice(data);
    let mut out = Vec::new();
    header.format(payload.len() as u64, &mut out).unwrap();
    let key = mask.unwrap_or([0; 4]);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    out
}

fn answer(upgrade: &str, protocol: Option<&str>) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    headers.insert(http::header::UPGRADE, upgrade.parse().unwrap());
    if let Some(protocol) = protocol {
        headers.insert(
            http::header::SEC_WEBSOCKET_PROTOCOL,
            protocol.parse().unwrap(),
        );
    }
    headers
}

fn exec_details() -> StreamDetails {
    StreamDetails::from_request(
        7,
        StreamKind::Exec,
        Some("command=sh&command=-c&command=echo+hi&container=app&stdin=true&stdout=true&tty=true"),
        &answer("websocket", Some("v5.channel.k8s.io")),
    )
}

/// Starts a recording whose events land in a vector, on a resource that refuses unrecorded
/// streams.
fn recorder(config: &RecordingConfig) -> (RecordingTap, Arc<Mutex<Vec<AuditEventKind>>>) {
    recorder_under(config, UnrecordedStreams::Deny)
}

fn recorder_under(
    config: &RecordingConfig,
    unrecorded: UnrecordedStreams,
) -> (RecordingTap, Arc<Mutex<Vec<AuditEventKind>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let emit: Emit = Box::new(move |kind| {
        sink.lock().unwrap().push(kind);
        true
    });
    let (tap, task) =
        start(exec_details(), config, unrecorded, emit).expect("exec over v5 is recorded");
    tokio::spawn(task.run());
    (tap, events)
}

/// Drops the tap and waits for the recorder's last event.
async fn finish(tap: RecordingTap, events: &Mutex<Vec<AuditEventKind>>) -> Vec<AuditEvent> {
    drop(tap);
    for _ in 0..500 {
        let done = events
            .lock()
            .unwrap()
            .iter()
            .any(|k| matches!(k, AuditEventKind::RecordingEnded(_)));
        if done {
            let kinds = std::mem::take(&mut *events.lock().unwrap());
            let session = SessionId::new("s");
            return kinds
                .into_iter()
                .map(|kind| AuditEvent::now(session.clone(), kind))
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the recorder did not finish");
}

fn ended(events: &[AuditEvent]) -> RecordingEnded {
    events
        .iter()
        .find_map(|e| match &e.kind {
            AuditEventKind::RecordingEnded(r) => Some(r.clone()),
            _ => None,
        })
        .unwrap()
}

#[test]
fn details_come_from_the_query_and_the_answer() {
    let exec = exec_details();
    assert_eq!(exec.command, ["sh", "-c", "echo hi"]);
    assert_eq!(exec.container.as_deref(), Some("app"));
    assert!(exec.tty && exec.stdin && exec.recorded);
    assert_eq!(exec.protocol.as_deref(), Some("v5.channel.k8s.io"));

    let spdy = StreamDetails::from_request(1, StreamKind::Exec, None, &answer("SPDY/3.1", None));
    assert!(!spdy.recorded, "SPDY is not recorded");
    assert_eq!(spdy.protocol.as_deref(), Some("SPDY/3.1"));

    let base64 = answer("websocket", Some("base64.channel.k8s.io"));
    let text = StreamDetails::from_request(1, StreamKind::Attach, Some("tty=false"), &base64);
    assert!(
        text.recorded && !text.tty,
        "base64 channels are recorded too"
    );
    let other = answer("websocket", Some("x.example"));
    let unknown = StreamDetails::from_request(1, StreamKind::Exec, None, &other);
    assert!(!unknown.recorded);

    let forward = StreamDetails::from_request(
        2,
        StreamKind::PortForward,
        Some("ports=8080&ports=9090,53&ports=x"),
        &answer("websocket", Some("SPDY/3.1+portforward.k8s.io")),
    );
    assert_eq!(forward.ports, [8080, 9090, 53]);
    assert!(!forward.recorded, "port-forward records its ports only");
}

#[tokio::test]
async fn a_recorded_exec_replays_its_output_and_exit_code() {
    let (mut tap, events) = recorder(&RecordingConfig::default());
    let mask = Some([1, 2, 3, 4]);
    let stdin = message(0, b"ls\n", mask);
    let (head, tail) = stdin.split_at(3);
    tap.observe(Direction::ToServer, head).await.unwrap();
    tap.observe(Direction::ToServer, tail).await.unwrap();
    tap.observe(Direction::ToClient, &message(1, b"file-a\n", None))
        .await
        .unwrap();
    tap.observe(Direction::ToClient, &message(2, b"oops\n", None))
        .await
        .unwrap();
    tap.observe(Direction::ToClient, &message(1, b"file-b\n", None))
        .await
        .unwrap();
    let status = br#"{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#;
    tap.observe(Direction::ToClient, &message(3, status, None))
        .await
        .unwrap();
    let events = finish(tap, &events).await;

    let end = ended(&events);
    assert!(!end.truncated, "{end:?}");
    assert_eq!(end.total_bytes, 3 + 7 + 5 + 7 + status.len() as u64);
    let found = recordings(&events);
    assert_eq!(found.len(), 1);
    let recording = &found[0];
    assert!(recording.complete());
    assert_eq!(recording.details.command, ["sh", "-c", "echo hi"]);
    assert_eq!(replay(recording), b"file-a\noops\nfile-b\n");
    assert_eq!(recording.channel(0), b"ls\n");
    assert_eq!(recording.exit_code(), Some(3));
}

#[tokio::test]
async fn the_cap_keeps_counting_and_still_keeps_the_status() {
    let config = RecordingConfig {
        max_bytes: 1000,
        ..RecordingConfig::default()
    };
    let (mut tap, events) = recorder(&config);
    for _ in 0..5 {
        tap.observe(Direction::ToClient, &message(1, &[b'x'; 400], None))
            .await
            .unwrap();
    }
    tap.observe(
        Direction::ToClient,
        &message(3, br#"{"status":"Success"}"#, None),
    )
    .await
    .unwrap();
    let events = finish(tap, &events).await;

    let end = ended(&events);
    assert!(end.truncated);
    assert!(end.reason.unwrap().contains("cap of 1000 bytes"));
    assert_eq!(end.total_bytes, 2000 + 20);
    assert_eq!(end.recorded_bytes, 1000 + 20);
    let offsets: Vec<u64> = events
        .iter()
        .filter_map(|e| match &e.kind {
            AuditEventKind::StreamData(d) if d.channel == 1 => Some(d.offset),
            _ => None,
        })
        .collect();
    assert_eq!(offsets, [0, 400, 800], "nothing recorded past the cap");
    assert_eq!(
        end.gaps,
        [RecordingGap {
            channel: 1,
            offset: 1000,
            bytes: 1000
        }]
    );
    let recording = &recordings(&events)[0];
    let replayed = String::from_utf8(replay(recording)).unwrap();
    assert!(replayed.starts_with(&"x".repeat(1000)), "{replayed}");
    assert!(
        replayed.ends_with("[kms-pam: 1000 bytes of stdout were not recorded (recording cap)]\r\n"),
        "the gap is marked with its size: {replayed}"
    );
    assert_eq!(recording.exit_code(), Some(0));
    assert!(!recording.complete());
}

#[tokio::test]
async fn what_the_user_types_is_kept_past_the_cap_up_to_its_own() {
    let config = RecordingConfig::default()
        .with_max_bytes(100)
        .with_max_input_bytes(1000);
    let (mut tap, events) = recorder(&config);
    let mask = Some([9, 8, 7, 6]);
    // A long output fills the shared cap...
    tap.observe(Direction::ToClient, &message(1, &[b'o'; 300], None))
        .await
        .unwrap();
    // ...and what is typed after it is still kept, up to the input cap.
    for _ in 0..6 {
        tap.observe(Direction::ToServer, &message(0, &[b'i'; 200], mask))
            .await
            .unwrap();
    }
    tap.observe(Direction::ToClient, &message(1, b"late output", None))
        .await
        .unwrap();
    let events = finish(tap, &events).await;
    let end = ended(&events);
    let recording = &recordings(&events)[0];
    assert_eq!(recording.channel(1).len(), 100);
    assert_eq!(
        recording.channel(0).len(),
        1000,
        "input kept past the output cap"
    );
    assert_eq!(
        end.gaps,
        [
            RecordingGap {
                channel: 0,
                offset: 1000,
                bytes: 200
            },
            RecordingGap {
                channel: 1,
                offset: 100,
                bytes: 200 + 11
            },
        ]
    );
    assert!(end.truncated);
}

/// A base64 channel message as the protocol frames it: a text message, the channel digit, then
/// the payload in base64.
fn text_message(channel: u8, data: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    use base64::Engine;
    let text = format!(
        "{channel}{}",
        base64::engine::general_purpose::STANDARD.encode(data)
    );
    let header = FrameHeader {
        is_final: true,
        rsv1: false,
        rsv2: false,
        rsv3: false,
        opcode: OpCode::Data(Data::Text),
        mask,
    };
    let mut out = Vec::new();
    header.format(text.len() as u64, &mut out).unwrap();
    let key = mask.unwrap_or([0; 4]);
    out.extend(text.bytes().enumerate().map(|(i, b)| b ^ key[i % 4]));
    out
}

#[tokio::test]
async fn base64_channel_streams_are_recorded_like_binary_ones() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let emit: Emit = Box::new(move |kind| {
        sink.lock().unwrap().push(kind);
        true
    });
    let details = StreamDetails::from_request(
        3,
        StreamKind::Exec,
        Some("command=cat&stdin=true&stdout=true"),
        &answer("websocket", Some("base64.channel.k8s.io")),
    );
    let (mut tap, task) = start(
        details,
        &RecordingConfig::default(),
        UnrecordedStreams::Deny,
        emit,
    )
    .expect("recorded");
    tokio::spawn(task.run());
    let typed = text_message(0, b"secret plans\n", Some([1, 2, 3, 4]));
    // In pieces that split base64 groups and the header.
    for piece in typed.chunks(5) {
        tap.observe(Direction::ToServer, piece).await.unwrap();
    }
    tap.observe(
        Direction::ToClient,
        &text_message(1, b"secret plans\n", None),
    )
    .await
    .unwrap();
    tap.observe(
        Direction::ToClient,
        &text_message(3, br#"{"status":"Success"}"#, None),
    )
    .await
    .unwrap();
    let events = finish(tap, &events).await;
    let recording = &recordings(&events)[0];
    assert_eq!(recording.channel(0), b"secret plans\n");
    assert_eq!(replay(recording), b"secret plans\n");
    assert_eq!(recording.exit_code(), Some(0));
    assert!(recording.complete(), "{:?}", recording.ended);
}

#[tokio::test]
async fn a_full_queue_makes_the_splice_wait_and_loses_nothing() {
    let config = RecordingConfig::default().with_queue_pieces(1);
    let (mut tap, events) = recorder(&config);
    // The recorder task has not run yet: the second piece finds the queue full and waits for
    // it (this runtime's one thread then runs the recorder) instead of being dropped.
    tap.observe(Direction::ToClient, &message(1, b"first", None))
        .await
        .unwrap();
    tap.observe(Direction::ToClient, &message(1, b"second", None))
        .await
        .unwrap();
    tap.observe(Direction::ToClient, &message(1, b"third", None))
        .await
        .unwrap();
    let events = finish(tap, &events).await;
    let end = ended(&events);
    assert!(!end.truncated, "{end:?}");
    assert_eq!(replay(&recordings(&events)[0]), b"firstsecondthird");
}

#[tokio::test]
async fn under_allow_unreadable_frames_end_the_recording_of_that_direction_only() {
    let (mut tap, events) = recorder_under(&RecordingConfig::default(), UnrecordedStreams::Allow);
    let ok = message(1, b"ok", None);
    tap.observe(Direction::ToClient, &ok).await.unwrap();
    tap.observe(Direction::ToServer, &[0x80 | 0x03, 0x00]) // a reserved opcode
        .await
        .unwrap();
    // The stream goes on: later pieces both ways are let through, the readable side recorded.
    for _ in 0..20 {
        tap.observe(
            Direction::ToServer,
            &message(0, b"typed", Some([1, 2, 3, 4])),
        )
        .await
        .expect("allowed unrecorded");
        tokio::task::yield_now().await;
    }
    tap.observe(Direction::ToClient, &message(1, b"still", None))
        .await
        .unwrap();
    let events = finish(tap, &events).await;
    let end = ended(&events);
    assert!(end.reason.unwrap().contains("ToServer"));
    assert_eq!(replay(&recordings(&events)[0]), b"okstill");
}

#[tokio::test]
async fn under_deny_unreadable_frames_refuse_the_next_piece_either_way() {
    let (mut tap, events) = recorder(&RecordingConfig::default());
    tap.observe(Direction::ToClient, &message(1, b"ok", None))
        .await
        .unwrap();
    tap.observe(Direction::ToServer, &[0x80 | 0x03, 0x00])
        .await
        .unwrap();
    let mut refused = None;
    for _ in 0..100 {
        // The recorder reads the bad frame meanwhile; the output side is refused too.
        if let Err(e) = tap
            .observe(Direction::ToClient, &message(1, b"x", None))
            .await
        {
            refused = Some(e);
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let refused = refused.expect("the stream is refused once it cannot be recorded");
    let said = refused.to_string();
    assert!(said.contains("ToServer") && said.contains("deny"), "{said}");
    let events = finish(tap, &events).await;
    let end = ended(&events);
    assert!(end.truncated);
    assert!(end.reason.unwrap().contains("ToServer"));
}

#[test]
fn nothing_is_recorded_with_a_zero_cap_or_an_unrecorded_protocol() {
    let emitted = Arc::new(Mutex::new(Vec::new()));
    let sink = emitted.clone();
    let off = RecordingConfig::default()
        .with_max_bytes(0)
        .with_max_input_bytes(0);
    let emit: Emit = Box::new(move |kind| {
        sink.lock().unwrap().push(kind);
        true
    });
    assert!(start(exec_details(), &off, UnrecordedStreams::Deny, emit).is_none());
    let kinds = emitted.lock().unwrap();
    assert!(
        matches!(&kinds[..], [AuditEventKind::StreamDetails(d)] if !d.recorded),
        "{kinds:?}"
    );
}

/// A recording whose audit sink refuses `StreamData` events once `refuse` is set (a full spool).
fn recorder_with_a_sink_that_fills(
    unrecorded: UnrecordedStreams,
) -> (
    RecordingTap,
    Arc<Mutex<Vec<AuditEventKind>>>,
    Arc<std::sync::atomic::AtomicBool>,
) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let refuse = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (sink, full) = (events.clone(), refuse.clone());
    let emit: Emit = Box::new(move |kind| {
        let data = matches!(kind, AuditEventKind::StreamData(_));
        if data && full.load(std::sync::atomic::Ordering::SeqCst) {
            return false;
        }
        sink.lock().unwrap().push(kind);
        true
    });
    let config = RecordingConfig::default();
    let (tap, task) = start(exec_details(), &config, unrecorded, emit).expect("recorded");
    tokio::spawn(task.run());
    (tap, events, refuse)
}

/// Waits until the recorder emitted `n` `StreamData` events.
async fn data_events(events: &Mutex<Vec<AuditEventKind>>, n: usize) {
    for _ in 0..400 {
        let seen = events
            .lock()
            .unwrap()
            .iter()
            .filter(|k| matches!(k, AuditEventKind::StreamData(_)))
            .count();
        if seen >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the recorder did not emit {n} StreamData events");
}

/// Nothing lost at the edges: data the audit sink refuses is never silently missing from the
/// record. Under allow the stream goes on and the recording ends truncated, the refused bytes and
/// everything after them a gap; under deny the stream is ended.
#[tokio::test]
async fn data_the_audit_sink_refuses_is_a_gap_or_ends_the_stream() {
    let (mut tap, events, refuse) = recorder_with_a_sink_that_fills(UnrecordedStreams::Allow);
    tap.observe(Direction::ToClient, &message(1, b"ok", None))
        .await
        .unwrap();
    data_events(&events, 1).await;
    refuse.store(true, std::sync::atomic::Ordering::SeqCst);
    tap.observe(Direction::ToClient, &message(1, b"lost", None))
        .await
        .unwrap();
    tap.observe(Direction::ToClient, &message(1, b"more", None))
        .await
        .expect("under allow the stream goes on");
    let events = finish(tap, &events).await;
    let end = ended(&events);
    assert!(end.truncated);
    assert!(
        end.reason
            .as_deref()
            .unwrap()
            .contains("audit sink refused"),
        "{end:?}"
    );
    let gaps: Vec<_> = end
        .gaps
        .iter()
        .map(|g| (g.channel, g.offset, g.bytes))
        .collect();
    assert_eq!(gaps, [(1, 2, 8)], "from the refused piece to the end");
    assert_eq!(end.recorded_bytes, 2);

    let (mut tap, events, refuse) = recorder_with_a_sink_that_fills(UnrecordedStreams::Deny);
    refuse.store(true, std::sync::atomic::Ordering::SeqCst);
    tap.observe(
        Direction::ToServer,
        &message(0, b"rm -rf", Some([1, 2, 3, 4])),
    )
    .await
    .unwrap();
    let mut ended_stream = None;
    for _ in 0..100 {
        if let Err(e) = tap
            .observe(Direction::ToClient, &message(1, b"x", None))
            .await
        {
            ended_stream = Some(e.to_string());
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let said = ended_stream.expect("under deny the stream is ended");
    assert!(said.contains("audit sink refused"), "{said}");
    drop(tap);
    drop(events);
}
