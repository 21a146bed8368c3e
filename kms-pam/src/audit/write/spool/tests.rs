use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::AtomicUsize;

use super::*;
use crate::audit::evidence::chain::{verify_chain, ChainReport, ChainingSink};
use crate::audit::{AuditEventKind, RequestFinished};
use crate::session::SessionStatus;

fn event(session: &str, request_id: u64) -> AuditEvent {
    AuditEvent::now(
        SessionId::new(session),
        AuditEventKind::RequestFinished(RequestFinished {
            request_id,
            status: 200,
            bytes_in: 0,
            bytes_out: 512,
            duration_ms: 4,
            error: None,
        }),
    )
}

fn ids(events: &[AuditEvent]) -> Vec<uuid::Uuid> {
    events.iter().map(|e| e.id).collect()
}

/// Records `n` events, returning their ids.
fn record(sink: &SpoolSink, n: u64) -> Vec<uuid::Uuid> {
    (0..n)
        .map(|i| {
            let e = event("s", i);
            let id = e.id;
            sink.record(e).unwrap();
            id
        })
        .collect()
}

async fn open(dir: &Path, config: SpoolConfig) -> (SpoolSink, Spool) {
    let sink = SpoolSink::open(dir, config).await.unwrap();
    let spool = sink.spool();
    (sink, spool)
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".jsonl"))
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn flushed_events_are_on_disk_and_come_back_after_a_restart() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("spool");
    let (sink, spool) = open(&dir, SpoolConfig::default()).await;
    let written = record(&sink, 10);
    assert_eq!(spool.depth(), 10);
    sink.flush().await.unwrap();
    let on_disk = std::fs::read_to_string(&segment_files(&dir)[0]).unwrap();
    assert_eq!(on_disk.lines().count(), 10, "flush returns once synced");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&segment_files(&dir)[0]), 0o600);
    }
    sink.close().await.unwrap();

    let (_sink, spool) = open(&dir, SpoolConfig::default()).await;
    assert_eq!(spool.depth(), 10);
    let batch = spool.pending(100).await.unwrap();
    assert_eq!(ids(&batch.events), written);
}

#[tokio::test]
async fn after_a_crash_only_flushed_events_are_guaranteed_and_a_torn_line_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let config = SpoolConfig {
        sync_interval: Duration::from_secs(60),
        ..SpoolConfig::default()
    };
    let (sink, _) = open(dir.path(), config.clone()).await;
    let flushed = record(&sink, 5);
    sink.flush().await.unwrap();
    let unflushed = record(&sink, 5);
    sink.crash().await;
    let segment = segment_files(dir.path()).pop().unwrap();
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&segment)
        .unwrap();
    file.write_all(br#"{"id":"7d8e4b1c-torn-in-the-midd"#)
        .unwrap();

    let (_sink, spool) = open(dir.path(), config).await;
    let back = ids(&spool.pending(100).await.unwrap().events);
    assert_eq!(back[..5], flushed[..], "everything flushed survives");
    assert!(back[5..].iter().all(|id| unflushed.contains(id)));
    assert_eq!(spool.depth(), back.len() as u64);
    let text = std::fs::read_to_string(&segment).unwrap();
    assert!(text.ends_with('\n'), "the torn line was cut off");
}

#[tokio::test]
async fn ack_releases_events_and_segments_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = SpoolConfig {
        segment_bytes: 1_000,
        ..SpoolConfig::default()
    };
    let (sink, spool) = open(dir.path(), config.clone()).await;
    let written = record(&sink, 30);
    sink.flush().await.unwrap();
    assert!(segment_files(dir.path()).len() > 3, "small segments rotate");

    let first = spool.pending(12).await.unwrap();
    assert_eq!(ids(&first.events), written[..12]);
    let again = spool.pending(12).await.unwrap();
    assert_eq!(ids(&again.events), written[..12], "unacked stays pending");
    spool.ack(first.cursor).await.unwrap();
    assert_eq!(spool.depth(), 18);
    spool.ack(first.cursor).await.unwrap();
    assert_eq!(spool.depth(), 18, "acking twice changes nothing");
    let rest = spool.pending(100).await.unwrap();
    assert_eq!(ids(&rest.events), written[12..]);
    drop(sink);

    let (_sink, reopened) = open(dir.path(), config.clone()).await;
    let after_restart = reopened.pending(100).await.unwrap();
    assert_eq!(
        ids(&after_restart.events),
        written[12..],
        "the ack was kept"
    );
    reopened.ack(after_restart.cursor).await.unwrap();
    assert_eq!((reopened.depth(), reopened.bytes()), (0, 0));
    assert_eq!(segment_files(dir.path()).len(), 0, "acked segments deleted");
}

#[tokio::test]
async fn a_full_spool_refuses_and_counts_until_acked() {
    let dir = tempfile::tempdir().unwrap();
    let config = SpoolConfig {
        max_bytes: 2_000,
        ..SpoolConfig::default()
    };
    let (sink, spool) = open(dir.path(), config).await;
    let mut accepted = 0;
    let refused = loop {
        match sink.record(event("s", accepted)) {
            Ok(()) => accepted += 1,
            Err(e) => break e,
        }
    };
    assert!(matches!(refused, AuditError::Full(_)), "{refused}");
    assert!(refused.to_string().contains("is full"));
    assert!(sink.record(event("s", 99)).is_err());
    assert_eq!(spool.dropped(), 2);
    assert!(spool.bytes() <= 2_000);
    sink.flush().await.unwrap();
    let batch = spool.pending(1_000).await.unwrap();
    assert_eq!(batch.events.len() as u64, accepted);
    spool.ack(batch.cursor).await.unwrap();
    sink.record(event("s", 100)).unwrap();
}

#[tokio::test]
async fn batches_sync_on_count_or_after_the_interval_without_a_flush() {
    let dir = tempfile::tempdir().unwrap();
    let by_count = SpoolConfig {
        sync_interval: Duration::from_secs(3600),
        sync_batch: 100,
        ..SpoolConfig::default()
    };
    let (sink, spool) = open(dir.path(), by_count).await;
    record(&sink, 99);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(spool.pending(1000).await.unwrap().events.is_empty());
    record(&sink, 1);
    let mut progress = spool.progress();
    tokio::time::timeout(
        Duration::from_secs(5),
        progress.wait_for(|p| p.synced == 100),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(spool.pending(1000).await.unwrap().events.len(), 100);

    let dir = tempfile::tempdir().unwrap();
    let (sink, spool) = open(dir.path(), SpoolConfig::default()).await;
    record(&sink, 1);
    let mut progress = spool.progress();
    tokio::time::timeout(Duration::from_secs(5), progress.wait_for(|p| p.synced == 1))
        .await
        .unwrap()
        .unwrap();
}

/// A KMS double: keeps each event id once, and can be down for the first `down` calls or lose
/// its answer after keeping a batch.
#[derive(Default)]
struct Kms {
    down: usize,
    lose_answers: usize,
    calls: AtomicUsize,
    kept: Mutex<HashMap<uuid::Uuid, AuditEvent>>,
    received: AtomicUsize,
}

#[async_trait]
impl Uploader for Kms {
    async fn upload(&self, batch: &[AuditEvent]) -> Result<(), AuditError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        if call < self.down {
            return Err(AuditError::failed("KMS unreachable"));
        }
        self.received.fetch_add(batch.len(), Ordering::SeqCst);
        let mut kept = self.kept.lock().unwrap();
        for event in batch {
            kept.entry(event.id).or_insert_with(|| event.clone());
        }
        if call < self.down + self.lose_answers {
            return Err(AuditError::failed("connection reset before the answer"));
        }
        Ok(())
    }
}

fn quick() -> ShipperConfig {
    ShipperConfig {
        batch_size: 7,
        initial_backoff: Duration::from_millis(2),
        max_backoff: Duration::from_millis(20),
    }
}

/// Runs a shipper until the spool is empty.
async fn ship_all(spool: &Spool, kms: Arc<Kms>) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shipper = SpoolShipper::new(spool.clone(), kms).with_config(quick());
    let task = tokio::spawn(shipper.run(async {
        let _ = stopped.await;
    }));
    for _ in 0..1_000 {
        if spool.depth() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = stop.send(());
    task.await.unwrap();
    assert_eq!(spool.depth(), 0, "everything shipped");
}

#[tokio::test]
async fn kms_down_for_a_while_then_everything_arrives_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let (sink, spool) = open(dir.path(), SpoolConfig::default()).await;
    let kms = Arc::new(Kms {
        down: 5,
        lose_answers: 2,
        ..Kms::default()
    });
    let mut written = record(&sink, 40);
    sink.flush().await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shipper = SpoolShipper::new(spool.clone(), kms.clone()).with_config(quick());
    let task = tokio::spawn(shipper.run(async {
        let _ = stopped.await;
    }));
    // More events while KMS is down: they queue behind the first ones.
    written.extend(record(&sink, 20));
    sink.flush().await.unwrap();
    for _ in 0..1_000 {
        if spool.depth() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = stop.send(());
    task.await.unwrap();

    let kept = kms.kept.lock().unwrap();
    assert_eq!(kept.len(), 60, "every event kept once");
    assert!(written.iter().all(|id| kept.contains_key(id)));
    assert!(kms.calls.load(Ordering::SeqCst) > 5 + 2);
    assert!(
        kms.received.load(Ordering::SeqCst) > 60,
        "lost answers made KMS see some events twice; their ids kept them once"
    );
    assert_eq!(spool.depth(), 0);
}

#[tokio::test]
async fn events_left_by_a_dead_gateway_are_shipped_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (sink, _) = open(dir.path(), SpoolConfig::default()).await;
    let written = record(&sink, 25);
    sink.flush().await.unwrap();
    sink.crash().await;

    let (_sink, spool) = open(dir.path(), SpoolConfig::default()).await;
    let kms = Arc::new(Kms::default());
    ship_all(&spool, kms.clone()).await;
    let kept = kms.kept.lock().unwrap();
    assert_eq!(kept.len(), 25);
    assert!(written.iter().all(|id| kept.contains_key(id)));
}

#[tokio::test]
async fn chains_continue_across_a_restart_whether_or_not_events_were_shipped() {
    let dir = tempfile::tempdir().unwrap();
    let kms = Arc::new(Kms::default());
    let ended = || {
        AuditEvent::now(
            SessionId::new("done"),
            AuditEventKind::SessionEnded {
                status: SessionStatus::Ended,
                ended_at: None,
                end_cause: None,
            },
        )
    };
    for (run, ship) in [(0, true), (1, false), (2, true)] {
        let sink = SpoolSink::open(dir.path(), SpoolConfig::default())
            .await
            .unwrap();
        let spool = sink.spool();
        let heads = spool.chain_heads();
        assert_eq!(heads.contains_key(&SessionId::new("s")), run > 0);
        assert!(!heads.contains_key(&SessionId::new("done")), "ended");
        let chained = ChainingSink::resume(sink, heads);
        for i in 0..4 {
            chained.record(event("s", run * 10 + i)).unwrap();
        }
        chained.record(event("done", 1)).unwrap();
        chained.record(ended()).unwrap();
        chained.flush().await.unwrap();
        if ship {
            ship_all(&spool, kms.clone()).await;
        }
    }
    let spool = SpoolSink::open(dir.path(), SpoolConfig::default())
        .await
        .unwrap()
        .spool();
    ship_all(&spool, kms.clone()).await;
    let mut session: Vec<AuditEvent> = kms
        .kept
        .lock()
        .unwrap()
        .values()
        .filter(|e| e.session_id.as_str() == "s")
        .cloned()
        .collect();
    session.sort_by_key(|e| e.seq);
    assert_eq!(
        verify_chain(&session),
        ChainReport::Intact {
            count: 12,
            sealed: false
        }
    );
}

#[tokio::test]
async fn a_failed_write_fails_the_flush_and_is_retried_in_a_new_segment() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("spool");
    let (sink, spool) = open(&dir, SpoolConfig::default()).await;
    let first = record(&sink, 3);
    std::fs::remove_dir_all(&dir).unwrap();
    let error = sink.flush().await.unwrap_err();
    assert!(error.to_string().contains("spool"), "{error}");
    std::fs::create_dir(&dir).unwrap();
    let second = record(&sink, 2);
    sink.flush().await.unwrap();
    let back = ids(&spool.pending(100).await.unwrap().events);
    assert_eq!(
        back,
        [first, second].concat(),
        "nothing lost, nothing repeated"
    );
}

#[tokio::test]
async fn a_failing_uploader_keeps_the_batch_until_it_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let (sink, spool) = open(dir.path(), SpoolConfig::default()).await;
    let ids = record(&sink, 5);
    sink.flush().await.unwrap();
    let mut uploader = super::shipper::MockUploader::new();
    let mut sequence = mockall::Sequence::new();
    uploader
        .expect_upload()
        .times(2)
        .in_sequence(&mut sequence)
        .returning(|_| Err(AuditError::failed("KMS unreachable")));
    let expected = ids.clone();
    uploader
        .expect_upload()
        .times(1)
        .in_sequence(&mut sequence)
        .withf(move |batch| batch.iter().map(|e| e.id).collect::<Vec<_>>() == expected)
        .returning(|_| Ok(()));
    let shipper = SpoolShipper::new(spool.clone(), uploader).with_config(quick());
    assert!(shipper.ship_batch().await.is_err());
    assert_eq!(spool.depth(), 5, "a failed upload acknowledges nothing");
    assert!(shipper.ship_batch().await.is_err());
    assert_eq!(shipper.ship_batch().await.unwrap(), 5);
    assert_eq!(spool.depth(), 0);
}
