//! The recorder of one stream: the splice's tap (a bounded queue the splice reserves room in
//! before it carries a piece) and the task that reads the frames, keeps what the caps allow and
//! emits the events.

use std::io;
use std::sync::Arc;
use std::task::{Context, Poll};

use base64::Engine;
use bytes::Bytes;
use futures_util::task::AtomicWaker;
use tokio::sync::mpsc;
use tokio_util::sync::PollSender;

use crate::audit::recording::{Direction, RecordingConfig, UnrecordedStreams};
use crate::audit::{AuditEventKind, RecordingEnded, RecordingGap, StreamData, StreamDetails};
use crate::kube::frames::{FrameParser, Observed};

/// Status messages (channel 3) kept beyond the cap: an exit code must survive a long output.
const STATUS_LIMIT: u64 = 64 * 1024;
/// The Kubernetes status channel.
const STATUS_CHANNEL: u8 = 3;

/// Records an event of the stream's session; the gateway counts and logs refusals.
/// Returns whether the audit sink took the event.
pub(crate) type Emit = Box<dyn Fn(AuditEventKind) -> bool + Send + Sync>;

fn is_base64(protocol: Option<&str>) -> bool {
    protocol.is_some_and(|p| p.contains("base64"))
}

/// Emits `details` and, when the stream is to be recorded, returns the tap the splice feeds and
/// the recorder task that reads it, for the caller to run beside the splice (the gateway tracks
/// both, so a recording's last events are written before it flushes at shutdown). `unrecorded`
/// (the resource's policy) says what the tap does when recording becomes impossible mid-stream:
/// end the stream (deny) or let it go on, the gap marked (allow).
pub(crate) fn start(
    mut details: StreamDetails,
    config: &RecordingConfig,
    unrecorded: UnrecordedStreams,
    emit: Emit,
) -> Option<(RecordingTap, RecorderTask)> {
    details.recorded &= config.max_bytes > 0 || config.max_input_bytes > 0;
    let (recorded, request_id) = (details.recorded, details.request_id);
    let base64 = is_base64(details.protocol.as_deref());
    emit(AuditEventKind::StreamDetails(Box::new(details)));
    if !recorded {
        return None;
    }
    let (queue, pieces) = mpsc::channel(config.queue_pieces.max(1));
    let lost = Arc::new(Lost::default());
    let parser = || {
        if base64 {
            FrameParser::base64()
        } else {
            FrameParser::new()
        }
    };
    let recorder = Recorder {
        request_id,
        emit,
        parsers: [parser(), parser()],
        kept: Kept::new(config),
        stop_at_failure: unrecorded == UnrecordedStreams::Deny,
        lost: lost.clone(),
    };
    let task = RecorderTask { recorder, pieces };
    let tap = RecordingTap {
        queues: [PollSender::new(queue.clone()), PollSender::new(queue)],
        unrecorded,
        stopped: [false; 2],
        lost,
    };
    Some((tap, task))
}

/// Why a direction can no longer be recorded, set by the recorder for its tap.
#[derive(Debug, Default)]
struct Lost {
    /// Per direction: its frames could not be read.
    directions: [std::sync::OnceLock<String>; 2],
    /// The splice, woken when a direction is lost: it may be waiting on a read meanwhile.
    splice: AtomicWaker,
}

impl Lost {
    fn set(&self, direction: Direction, reason: String) {
        let _ = self.directions[direction as usize].set(reason);
        self.splice.wake();
    }
}

/// The recorder of one stream: reads what its [`RecordingTap`] hands it until the tap is
/// dropped, then records the `RecordingEnded`.
pub(crate) struct RecorderTask {
    recorder: Recorder,
    pieces: mpsc::Receiver<(Direction, Bytes)>,
}

impl RecorderTask {
    /// Runs the recorder to the end of the stream.
    pub(crate) async fn run(self) {
        self.recorder.run(self.pieces).await;
    }
}

impl std::fmt::Debug for RecorderTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecorderTask")
            .field("request_id", &self.recorder.request_id)
            .finish_non_exhaustive()
    }
}

/// The splice's end of a recording: a copy of each piece carried goes to the recorder task. The
/// splice reserves room in the recorder's queue before it reads or writes a piece
/// ([`RecordingTap::poll_reserve`]), so it waits for the recorder instead of outrunning it: no
/// piece is dropped for lack of room.
#[derive(Debug)]
pub(crate) struct RecordingTap {
    /// One sender per direction, so each holds its own reservation.
    queues: [PollSender<(Direction, Bytes)>; 2],
    unrecorded: UnrecordedStreams,
    /// Directions no longer recorded (allowed to go on unrecorded).
    stopped: [bool; 2],
    lost: Arc<Lost>,
}

impl RecordingTap {
    /// Waits for room in the recorder's queue for the next piece travelling `direction`. An
    /// error means the stream can no longer be recorded and its resource refuses unrecorded
    /// streams: the splice ends it. Under [`UnrecordedStreams::Allow`] such a direction goes on
    /// unrecorded (the recording says so), never waiting.
    pub(crate) fn poll_reserve(
        &mut self,
        cx: &mut Context<'_>,
        direction: Direction,
    ) -> Poll<io::Result<()>> {
        let way = direction as usize;
        if self.stopped[way] {
            return Poll::Ready(Ok(()));
        }
        self.lost.splice.register(cx.waker());
        // Under deny, either direction lost ends the stream; under allow, only this one stops.
        let deny = self.unrecorded == UnrecordedStreams::Deny;
        let lost = (self.lost.directions.iter().enumerate())
            .find_map(|(w, reason)| reason.get().filter(|_| deny || w == way).cloned());
        if let Some(reason) = lost {
            return Poll::Ready(self.give_up(direction, reason));
        }
        match std::task::ready!(self.queues[way].poll_reserve(cx)) {
            Ok(()) => Poll::Ready(Ok(())),
            Err(_) => Poll::Ready(self.give_up(
                direction,
                "the recorder stopped before the stream ended".into(),
            )),
        }
    }

    /// Hands the recorder a copy of `bytes`, just carried in `direction`, into the room
    /// [`RecordingTap::poll_reserve`] reserved.
    pub(crate) fn send(&mut self, direction: Direction, bytes: &[u8]) {
        let way = direction as usize;
        if bytes.is_empty() || self.stopped[way] {
            return;
        }
        // Closed: the recorder gave up; the next reservation says what happens then.
        let _ = self.queues[way].send_item((direction, Bytes::copy_from_slice(bytes)));
    }

    /// The end of recording `direction`: under deny an error that ends the stream, under allow
    /// the direction goes on unrecorded (a recorder that read bad frames has marked the gap; one
    /// that is gone leaves a recording without its end, which replays as incomplete).
    fn give_up(&mut self, direction: Direction, reason: String) -> io::Result<()> {
        let way = direction as usize;
        match self.unrecorded {
            UnrecordedStreams::Deny => Err(io::Error::other(format!(
                "the stream can no longer be recorded ({reason}) and its resource refuses \
                 unrecorded streams (--unrecorded-streams=deny): closed"
            ))),
            UnrecordedStreams::Allow => {
                self.stopped[way] = true;
                self.queues[way].close();
                Ok(())
            }
        }
    }

    /// Waits for room, then hands over `bytes`: the splice's two steps in one, for tests.
    #[cfg(test)]
    pub(crate) async fn observe(&mut self, direction: Direction, bytes: &[u8]) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll_reserve(cx, direction)).await?;
        self.send(direction, bytes);
        Ok(())
    }
}

/// The recorder task's state.
struct Recorder {
    request_id: u64,
    emit: Emit,
    parsers: [FrameParser; 2],
    kept: Kept,
    /// The resource refuses unrecorded streams: the first unreadable direction ends recording.
    stop_at_failure: bool,
    lost: Arc<Lost>,
}

impl Recorder {
    async fn run(mut self, mut pieces: mpsc::Receiver<(Direction, Bytes)>) {
        while let Some((direction, bytes)) = pieces.recv().await {
            self.feed(direction, &bytes);
            let failed = self.parsers.iter().filter(|p| p.failed()).count();
            // Under deny one unreadable direction ends the stream; the splice learns it from
            // `lost` or, once this queue is gone, from its next reservation.
            if failed == 2 || (failed == 1 && self.stop_at_failure) {
                break;
            }
        }
        // What the splice handed over before learning it is carried already: record what can
        // be read of it, without waiting for a reservation it may hold.
        pieces.close();
        while let Ok((direction, bytes)) = pieces.try_recv() {
            self.feed(direction, &bytes);
        }
        (self.emit)(AuditEventKind::RecordingEnded(
            self.kept.summary(self.request_id),
        ));
    }

    /// Reads one piece and emits what it added, one `StreamData` per channel run.
    fn feed(&mut self, direction: Direction, bytes: &[u8]) {
        let parser = &mut self.parsers[direction as usize];
        if parser.failed() {
            return;
        }
        let kept = &mut self.kept;
        if let Err(e) = parser.feed(bytes, |observed| kept.take(direction, observed)) {
            let reason = format!("{direction:?}: {e}; the rest of it is not recorded");
            kept.truncate(reason.clone());
            self.lost.set(direction, reason);
        }
        let pieces: Vec<_> = self.kept.pieces.drain(..).collect();
        for (channel, offset, data) in pieces {
            let taken = !self.kept.frozen
                && (self.emit)(AuditEventKind::StreamData(StreamData {
                    request_id: self.request_id,
                    channel,
                    offset,
                    data_base64: base64::engine::general_purpose::STANDARD.encode(&data),
                }));
            if !taken {
                // Lost for the record: under deny the stream ends, under allow it is a gap.
                self.kept
                    .refused(direction, channel, offset, data.len() as u64);
                let reason = format!("{direction:?}: the audit sink refused recorded data");
                self.lost.set(direction, reason);
            }
        }
    }
}

/// What is kept of a stream, and the counts that go on past the caps.
struct Kept {
    max_bytes: u64,
    max_input_bytes: u64,
    /// Payload kept, every channel but the status one.
    recorded: u64,
    /// Input (kubectl → API server) payload kept.
    input: u64,
    status: u64,
    total: u64,
    offsets: [u64; 256],
    /// Per channel: the offset of the first byte not kept, and how many were not.
    gaps: Vec<RecordingGap>,
    pieces: Vec<(u8, u64, Vec<u8>)>,
    reason: Option<String>,
    close_code: Option<u16>,
    /// The audit sink refused a piece: nothing more is kept, every channel's rest is a gap.
    frozen: bool,
}

impl Kept {
    fn new(config: &RecordingConfig) -> Self {
        Self {
            max_bytes: config.max_bytes,
            max_input_bytes: config.max_input_bytes,
            recorded: 0,
            input: 0,
            status: 0,
            total: 0,
            offsets: [0; 256],
            gaps: Vec::new(),
            pieces: Vec::new(),
            reason: None,
            close_code: None,
            frozen: false,
        }
    }

    fn take(&mut self, direction: Direction, observed: Observed<'_>) {
        match observed {
            Observed::Data { channel, data } => self.keep(direction, channel, data),
            Observed::Close { code, .. } => self.close_code = self.close_code.or(code),
        }
    }

    /// How many more bytes of `channel`, travelling `direction`, may be kept.
    fn room(&self, direction: Direction, channel: u8) -> u64 {
        if self.frozen {
            return 0;
        }
        if channel == STATUS_CHANNEL {
            return STATUS_LIMIT - self.status;
        }
        let shared = self.max_bytes.saturating_sub(self.recorded);
        match direction {
            // What the user typed goes on past the shared cap, up to its own.
            Direction::ToServer => shared.max(self.max_input_bytes.saturating_sub(self.input)),
            Direction::ToClient => shared,
        }
    }

    fn keep(&mut self, direction: Direction, channel: u8, data: &[u8]) {
        let len = data.len() as u64;
        self.total += len;
        let offset = self.offsets[usize::from(channel)];
        self.offsets[usize::from(channel)] += len;
        let keep = len.min(self.room(direction, channel));
        if keep < len {
            self.left_out(direction, channel, offset + keep, len - keep);
        }
        if keep == 0 {
            return;
        }
        if channel == STATUS_CHANNEL {
            self.status += keep;
        } else {
            self.recorded += keep;
            if direction == Direction::ToServer {
                self.input += keep;
            }
        }
        let data = &data[..usize::try_from(keep).unwrap_or(data.len())];
        match self.pieces.last_mut() {
            Some((c, at, bytes)) if *c == channel && *at + bytes.len() as u64 == offset => {
                bytes.extend_from_slice(data);
            }
            _ => self.pieces.push((channel, offset, data.to_vec())),
        }
    }

    /// Notes `bytes` of `channel` from `offset` on as not recorded. Caps only shrink, so a
    /// channel has one gap, to its end.
    fn left_out(&mut self, direction: Direction, channel: u8, offset: u64, bytes: u64) {
        let reason = match (direction, channel) {
            (_, STATUS_CHANNEL) => format!("status messages past {STATUS_LIMIT} bytes"),
            (Direction::ToServer, _) => format!(
                "the input recording cap of {} bytes was reached",
                self.max_input_bytes.max(self.max_bytes)
            ),
            (Direction::ToClient, _) => {
                format!("the recording cap of {} bytes was reached", self.max_bytes)
            }
        };
        self.truncate(reason);
        match self.gaps.iter_mut().find(|g| g.channel == channel) {
            Some(gap) => gap.bytes += bytes,
            None => self.gaps.push(RecordingGap {
                channel,
                offset,
                bytes,
            }),
        }
    }

    /// The audit sink refused a piece counted as kept (`bytes` of `channel` from `offset`): it
    /// is uncounted and starts its channel's gap, and nothing more is kept (a channel's gap runs
    /// to its end, so a later piece could not be placed after it).
    fn refused(&mut self, direction: Direction, channel: u8, offset: u64, bytes: u64) {
        // Each was counted when the piece was kept; saturating all the same, never a panic.
        if channel == STATUS_CHANNEL {
            self.status = self.status.saturating_sub(bytes);
        } else {
            self.recorded = self.recorded.saturating_sub(bytes);
            if direction == Direction::ToServer {
                self.input = self.input.saturating_sub(bytes);
            }
        }
        self.frozen = true;
        self.truncate(
            "the audit sink refused recorded data (its queue or spool was full); the rest of the \
             stream is not recorded"
                .into(),
        );
        match self.gaps.iter_mut().find(|g| g.channel == channel) {
            Some(gap) => gap.bytes += bytes,
            None => self.gaps.push(RecordingGap {
                channel,
                offset,
                bytes,
            }),
        }
    }

    /// Marks the recording incomplete; the first reason is the one reported.
    fn truncate(&mut self, reason: String) {
        self.reason.get_or_insert(reason);
    }

    fn summary(&self, request_id: u64) -> RecordingEnded {
        let mut gaps = self.gaps.clone();
        gaps.sort_by_key(|g| g.channel);
        RecordingEnded {
            request_id,
            recorded_bytes: self.recorded + self.status,
            total_bytes: self.total,
            truncated: self.reason.is_some(),
            reason: self.reason.clone(),
            close_code: self.close_code,
            gaps,
        }
    }
}

#[cfg(test)]
#[path = "recorder_tests.rs"]
mod tests;
