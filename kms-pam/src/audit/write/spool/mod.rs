//! The durable spool: audit events on local disk until KMS has them.
//!
//! [`SpoolSink`] is the [`AuditSink`]: `record` serializes the event and appends it to an
//! in-memory queue; a writer task appends queued events to segment files in the spool directory
//! (`segment-NNNNNNNNNNNNNNNNNNNN.jsonl`, one JSON event per line, mode 0600) and `fsync`s them in
//! batches: when 1,000 events are queued or 50 ms after the oldest queued event, whichever comes
//! first, and at once when someone calls `flush`. `flush` returns when everything recorded before
//! it is synced; those events survive a SIGKILL or a power loss.
//!
//! The spool is bounded ([`SpoolConfig::max_bytes`], 64 MiB by default, counting queued and
//! unacknowledged bytes): a full spool refuses events with [`AuditError::Full`], counts them
//! ([`Spool::dropped`]) and logs an error at most once a second; the caller counts them again in
//! `audit_events_dropped`. Nothing is dropped silently.
//!
//! [`Spool`] is the uploader's side: inside the crate, `Spool::pending` reads the oldest synced
//! events not yet acknowledged, `Spool::ack` releases them (segments wholly acknowledged are
//! deleted), and [`SpoolShipper`] does both in a loop around an [`Uploader`], retrying with
//! backoff. After a restart, unacknowledged events are shipped again; their ids are the
//! idempotency keys, so KMS keeps each once. A torn last line (a crash mid-write) is cut off with
//! a warning.
//!
//! Chain heads (the last `seq` and `hash` of each session, see [`crate::audit::evidence::chain`]) are
//! folded into `heads.json` before a segment is deleted, so [`Spool::chain_heads`] after a
//! restart lets a [`ChainingSink`](crate::audit::ChainingSink) continue every open session's chain.
//! One process uses a spool directory at a time.

mod heads;
mod segment;
mod shipper;
mod writer;

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use super::{AuditError, AuditEvent, AuditSink, ChainHead};
use crate::session::SessionId;

pub use shipper::{ShipperConfig, SpoolShipper, Uploader};

/// Sizes and the batching window of a spool: the defaults, changed with the `with_*` methods.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SpoolConfig {
    /// Most bytes of events kept (queued, or on disk and not acknowledged). Default 64 MiB.
    pub max_bytes: u64,
    /// A segment file is closed, and a new one started, once it is this large. Default 4 MiB.
    pub segment_bytes: u64,
    /// Longest an event waits for its batch to be synced. Default 50 ms.
    pub sync_interval: Duration,
    /// A batch is written and synced as soon as this many events are queued. Default 1,000.
    pub sync_batch: usize,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        Self {
            max_bytes: 64 * 1024 * 1024,
            segment_bytes: 4 * 1024 * 1024,
            sync_interval: Duration::from_millis(50),
            sync_batch: 1_000,
        }
    }
}

impl SpoolConfig {
    /// Keeps at most `max_bytes` of events not yet acknowledged.
    pub fn with_max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Starts a new segment file once one reaches `segment_bytes`.
    pub fn with_segment_bytes(mut self, segment_bytes: u64) -> Self {
        self.segment_bytes = segment_bytes;
        self
    }

    /// Syncs a batch at the latest `interval` after its first event, or once `batch` events
    /// are queued.
    pub fn with_sync(mut self, interval: Duration, batch: usize) -> Self {
        self.sync_interval = interval;
        self.sync_batch = batch;
        self
    }
}

/// Where the uploader has got to: everything before it is acknowledged. Returned by
/// [`Spool::pending`], passed back to [`Spool::ack`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SpoolCursor {
    segment: u64,
    offset: u64,
    /// Events acknowledged since the spool was opened, this batch included.
    events: u64,
    /// Bytes acknowledged since the spool was opened, this batch included.
    bytes: u64,
}

/// The oldest synced events not yet acknowledged.
#[derive(Clone, Debug, Default)]
pub(crate) struct PendingBatch {
    /// The events, in the order they were recorded.
    pub(crate) events: Vec<AuditEvent>,
    /// Acknowledge this once KMS has kept `events`.
    pub(crate) cursor: SpoolCursor,
}

/// The [`AuditSink`] side of a spool. Dropping it lets the writer sync what is queued and stop;
/// call [`AuditSink::flush`] first where the end must be durable.
#[derive(Debug)]
pub struct SpoolSink {
    spool: Spool,
    writer: Option<tokio::task::JoinHandle<()>>,
}

/// The uploader's side of a spool: pending events, acknowledgements, depth. Cheap to clone.
#[derive(Clone)]
pub struct Spool {
    shared: Arc<Shared>,
}

struct Shared {
    dir: PathBuf,
    config: SpoolConfig,
    state: Mutex<State>,
    /// Wakes the writer: first queued event, a full batch, a flush, the sink's end.
    wake: Notify,
    progress: watch::Sender<Progress>,
    dropped: AtomicU64,
    heads_at_open: HashMap<SessionId, ChainHead>,
}

/// What the writer has made durable, for `flush` and the shipper.
#[derive(Clone, Debug, Default)]
struct Progress {
    /// Events recorded in this process that are synced.
    synced: u64,
    /// Write or sync failures so far; a flush that sees this grow fails.
    failures: u64,
    last_error: Option<String>,
    /// The writer task ended; nothing more will be synced.
    stopped: bool,
}

#[derive(Default)]
struct State {
    /// Serialized events (one JSON line each, newline included) waiting for the writer.
    queue: Vec<Vec<u8>>,
    first_queued: Option<Instant>,
    /// Events accepted by `record` in this process.
    recorded: u64,
    flush_wanted: bool,
    closed: bool,
    writer_stopped: bool,
    unacked_events: u64,
    unacked_bytes: u64,
    /// Segment files holding unacknowledged events, oldest first.
    segments: VecDeque<segment::Segment>,
    acked: SpoolCursor,
    last_drop_log: Option<Instant>,
}

impl SpoolSink {
    /// Opens (creating, mode 0700) the spool in `dir`, takes over what an earlier process left
    /// there, and starts the writer task.
    pub async fn open(dir: &Path, config: SpoolConfig) -> Result<SpoolSink, AuditError> {
        let owned = dir.to_owned();
        let recovered = tokio::task::spawn_blocking(move || segment::recover(&owned))
            .await
            .map_err(|e| AuditError::failed(format!("spool recovery stopped: {e}")))?
            .map_err(|e| failed(dir, e))?;
        let state = State {
            unacked_events: recovered.events,
            unacked_bytes: recovered.bytes,
            segments: recovered.segments.into(),
            acked: SpoolCursor {
                segment: recovered.acked.0,
                offset: recovered.acked.1,
                ..SpoolCursor::default()
            },
            ..State::default()
        };
        let shared = Arc::new(Shared {
            dir: dir.to_owned(),
            config,
            state: Mutex::new(state),
            wake: Notify::new(),
            progress: watch::Sender::new(Progress::default()),
            dropped: AtomicU64::new(0),
            heads_at_open: recovered.heads,
        });
        let writer = tokio::spawn(writer::run(shared.clone(), recovered.next_segment));
        Ok(SpoolSink {
            spool: Spool { shared },
            writer: Some(writer),
        })
    }

    /// The uploader's side of this spool.
    pub fn spool(&self) -> Spool {
        self.spool.clone()
    }

    /// Syncs everything recorded, then stops the writer and waits for it.
    pub async fn close(mut self) -> Result<(), AuditError> {
        let flushed = self.flush().await;
        self.spool.shared.lock().closed = true;
        self.spool.shared.wake.notify_one();
        if let Some(writer) = self.writer.take() {
            writer
                .await
                .map_err(|e| failed(&self.spool.shared.dir, format!("writer stopped: {e}")))?;
        }
        flushed
    }

    /// Simulates SIGKILL: what is queued is lost, a batch being written finishes, nothing else.
    #[cfg(test)]
    pub(crate) async fn crash(mut self) {
        {
            let mut state = self.spool.shared.lock();
            state.queue.clear();
            state.closed = true;
        }
        self.spool.shared.wake.notify_one();
        if let Some(writer) = self.writer.take() {
            let _ = writer.await;
        }
    }
}

impl Drop for SpoolSink {
    fn drop(&mut self) {
        self.spool.shared.lock().closed = true;
        self.spool.shared.wake.notify_one();
    }
}

#[async_trait]
impl AuditSink for SpoolSink {
    fn record(&self, event: AuditEvent) -> Result<(), AuditError> {
        let shared = &self.spool.shared;
        let mut line = serde_json::to_vec(&event)
            .map_err(|e| AuditError::failed(format!("cannot serialize audit event: {e}")))?;
        line.push(b'\n');
        let len = line.len() as u64;
        let mut state = shared.lock();
        if state.writer_stopped {
            return Err(failed(&shared.dir, "writer stopped"));
        }
        if state.unacked_bytes + len > shared.config.max_bytes {
            let message = format!(
                "spool {} is full ({} bytes in {} events waiting for KMS)",
                shared.dir.display(),
                state.unacked_bytes,
                state.unacked_events
            );
            shared.refused(&mut state, &message);
            return Err(AuditError::full(message));
        }
        state.unacked_bytes += len;
        state.unacked_events += 1;
        state.recorded += 1;
        state.queue.push(line);
        let queued = state.queue.len();
        if queued == 1 {
            state.first_queued = Some(Instant::now());
        }
        drop(state);
        if queued == 1 || queued >= shared.config.sync_batch {
            shared.wake.notify_one();
        }
        Ok(())
    }

    async fn flush(&self) -> Result<(), AuditError> {
        let shared = &self.spool.shared;
        let mut progress = shared.progress.subscribe();
        let failures = progress.borrow().failures;
        let target = {
            let mut state = shared.lock();
            state.flush_wanted = true;
            state.recorded
        };
        shared.wake.notify_one();
        let outcome = progress
            .wait_for(|p| p.synced >= target || p.failures > failures || p.stopped)
            .await
            .map_err(|_| failed(&shared.dir, "writer stopped"))?;
        if outcome.synced >= target {
            return Ok(());
        }
        let error = match &outcome.last_error {
            Some(error) if outcome.failures > failures => error.clone(),
            _ => "writer stopped".to_owned(),
        };
        Err(failed(&shared.dir, error))
    }
}

impl Spool {
    /// Events recorded and not yet acknowledged (queued or on disk): the `spool_depth` metric.
    pub fn depth(&self) -> u64 {
        self.shared.lock().unacked_events
    }

    /// Bytes of those events.
    pub fn bytes(&self) -> u64 {
        self.shared.lock().unacked_bytes
    }

    /// Events refused because the spool was full, since it was opened.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// The spool directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Where each session's chain stood when the spool was opened: the last event of every
    /// session not yet ended, from earlier processes. Feed it to
    /// [`ChainingSink::resume`](crate::audit::ChainingSink::resume).
    pub fn chain_heads(&self) -> HashMap<SessionId, ChainHead> {
        self.shared.heads_at_open.clone()
    }

    /// Up to `max` of the oldest synced, unacknowledged events, and the cursor that acknowledges
    /// them. Lines that do not parse (a disk fault) are skipped with a warning and acknowledged
    /// with the batch. One consumer at a time.
    pub(crate) async fn pending(&self, max: usize) -> Result<PendingBatch, AuditError> {
        let (cursor, segments) = {
            let state = self.shared.lock();
            (state.acked, Vec::from(state.segments.clone()))
        };
        let dir = self.shared.dir.clone();
        tokio::task::spawn_blocking(move || segment::read_pending(&dir, cursor, &segments, max))
            .await
            .map_err(|e| AuditError::failed(format!("spool read stopped: {e}")))?
            .map_err(|e| failed(&self.shared.dir, e))
    }

    /// Releases everything up to `cursor` (from [`Spool::pending`]); a stale cursor is ignored.
    /// Deletes segment files wholly acknowledged, after folding their chain heads into
    /// `heads.json`.
    pub(crate) async fn ack(&self, cursor: SpoolCursor) -> Result<(), AuditError> {
        let released = {
            let mut state = self.shared.lock();
            if cursor.events < state.acked.events || cursor.bytes < state.acked.bytes {
                return Ok(());
            }
            state.unacked_events -= (cursor.events - state.acked.events).min(state.unacked_events);
            state.unacked_bytes -= (cursor.bytes - state.acked.bytes).min(state.unacked_bytes);
            state.acked = cursor;
            let mut released = Vec::new();
            while let Some(first) = state.segments.front() {
                let done = first.number < cursor.segment
                    || (first.number == cursor.segment
                        && first.sealed
                        && cursor.offset >= first.durable_len);
                if !done {
                    break;
                }
                released.extend(state.segments.pop_front());
            }
            released
        };
        let dir = self.shared.dir.clone();
        tokio::task::spawn_blocking(move || segment::release(&dir, &released, cursor))
            .await
            .map_err(|e| AuditError::failed(format!("spool ack stopped: {e}")))?
            .map_err(|e| failed(&self.shared.dir, e))
    }

    /// Changes when more events may be pending (a batch was synced, or the writer failed).
    fn progress(&self) -> watch::Receiver<Progress> {
        self.shared.progress.subscribe()
    }

    /// The cursor acknowledged last.
    fn acked(&self) -> SpoolCursor {
        self.shared.lock().acked
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn refused(&self, state: &mut State, message: &str) {
        let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        let now = Instant::now();
        if state
            .last_drop_log
            .is_none_or(|last| now.duration_since(last) >= Duration::from_secs(1))
        {
            state.last_drop_log = Some(now);
            tracing::error!(dropped_total = dropped, "{message}; audit event refused");
        }
    }
}

fn failed(dir: &Path, error: impl std::fmt::Display) -> AuditError {
    AuditError::failed(format!("spool {}: {error}", dir.display()))
}

#[cfg(test)]
mod tests;

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("dir", &self.shared.dir)
            .finish_non_exhaustive()
    }
}
