//! Recording of upgraded streams: what `kubectl exec` and `kubectl attach` sent and received.
//!
//! When an upgrade succeeds, the gateway records a `StreamDetails` event (exec command,
//! container, tty, stdin; port-forward ports; the negotiated protocol). For exec and attach over
//! the WebSocket channel protocols (`v4.channel.k8s.io`, `v5.channel.k8s.io`, …) the splice then
//! hands a copy of each piece it carries, both ways, to a [`RecordingTap`]; a recorder task reads
//! the WebSocket frames ([`FrameParser`]) and records the channel payloads (0 stdin, 1 stdout,
//! 2 stderr, 3 status, 4 resize, 255 v5 channel close) as `StreamData` events, then a
//! `RecordingEnded` summary.
//!
//! Cap: [`RecordingConfig::max_bytes`] (1 MiB by default) of payload per stream; past it only
//! byte counts go on and `RecordingEnded` says `truncated: true`. Status messages (channel 3,
//! the exit code) are kept beyond the cap, up to 64 KiB. The splice is never slowed by more than
//! a copy into a bounded queue: when the recorder falls behind, the rest of that direction is not
//! recorded (`truncated`, with the reason). SPDY streams, port-forward data, proxy and text
//! (base64) protocols are not recorded: their details event says `recorded: false`.

mod frames;
mod replay;

use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use tokio::sync::mpsc;

use super::{AuditEventKind, RecordingEnded, StreamData, StreamDetails};
use crate::kube::StreamKind;

pub use frames::{FrameError, FrameParser, Observed};
pub use replay::{recordings, replay, RecordedChunk, Recording};

/// Status messages (channel 3) kept beyond the cap: an exit code must survive a long output.
const STATUS_LIMIT: u64 = 64 * 1024;
/// The Kubernetes status channel.
const STATUS_CHANNEL: u8 = 3;

/// How much of a stream is recorded.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RecordingConfig {
    /// Most payload bytes recorded per stream; 0 records nothing but the details. Default 1 MiB.
    pub max_bytes: u64,
    /// Pieces the splice may hand the recorder ahead of it (each at most one read, 8 KiB for
    /// the splice's copy). Default 64.
    pub queue_pieces: usize,
}

impl RecordingConfig {
    /// Records at most `max_bytes` of payload per stream (0: the details only).
    pub fn with_max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Lets the splice hand the recorder up to `pieces` reads ahead of it.
    pub fn with_queue_pieces(mut self, pieces: usize) -> Self {
        self.queue_pieces = pieces;
        self
    }
}

impl Default for RecordingConfig {
    fn default() -> Self {
        Self {
            max_bytes: 1024 * 1024,
            queue_pieces: 64,
        }
    }
}

/// Which way bytes travel through the gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From kubectl to the API server: stdin, resize (masked frames).
    ToServer,
    /// From the API server to kubectl: stdout, stderr, status (unmasked frames).
    ToClient,
}

/// Records an event of the stream's session; the gateway counts and logs refusals.
pub type Emit = Box<dyn Fn(AuditEventKind) + Send + Sync>;

impl StreamDetails {
    /// Reads what a stream is from its request's query (`command=`, `container=`, `tty=`,
    /// `stdin=`, `ports=`) and its `101` answer's `Upgrade` and `Sec-WebSocket-Protocol`.
    /// `recorded` says whether its bytes can be recorded.
    pub fn from_request(
        request_id: u64,
        stream: StreamKind,
        query: Option<&str>,
        answer: &http::HeaderMap,
    ) -> StreamDetails {
        let mut details = StreamDetails {
            request_id,
            stream,
            command: Vec::new(),
            container: None,
            tty: false,
            stdin: false,
            ports: Vec::new(),
            protocol: None,
            recorded: false,
        };
        let is_true = |v: &str| v != "0" && !v.eq_ignore_ascii_case("false");
        let pairs = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes());
        for (key, value) in pairs {
            match key.as_ref() {
                "command" => details.command.push(value.into_owned()),
                "container" if details.container.is_none() => {
                    details.container = Some(value.into_owned());
                }
                "tty" => details.tty = is_true(&value),
                "stdin" => details.stdin = is_true(&value),
                "ports" => details.ports.extend(
                    value
                        .split(',')
                        .filter_map(|p| p.trim().parse::<u16>().ok()),
                ),
                _ => {}
            }
        }
        let header = |name| answer.get(name).and_then(|v| v.to_str().ok());
        let upgrade = header(http::header::UPGRADE).unwrap_or_default();
        let websocket = upgrade.eq_ignore_ascii_case("websocket");
        let subprotocol = header(http::header::SEC_WEBSOCKET_PROTOCOL);
        details.protocol = if websocket {
            subprotocol
        } else {
            Some(upgrade)
        }
        .filter(|p| !p.is_empty())
        .map(str::to_owned);
        let binary_channels =
            subprotocol.is_some_and(|p| p.ends_with("channel.k8s.io") && !p.contains("base64"));
        details.recorded =
            matches!(stream, StreamKind::Exec | StreamKind::Attach) && websocket && binary_channels;
        details
    }
}

/// Emits `details` and, when the stream is to be recorded, starts its recorder task and returns
/// the tap the splice feeds. Needs a Tokio runtime.
pub fn start(
    mut details: StreamDetails,
    config: &RecordingConfig,
    emit: Emit,
) -> Option<RecordingTap> {
    details.recorded &= config.max_bytes > 0;
    let (recorded, request_id) = (details.recorded, details.request_id);
    emit(AuditEventKind::StreamDetails(Box::new(details)));
    if !recorded {
        return None;
    }
    let (queue, pieces) = mpsc::channel(config.queue_pieces.max(1));
    let behind = Arc::new([(); 2].map(|()| std::sync::atomic::AtomicBool::new(false)));
    let recorder = Recorder {
        request_id,
        emit,
        parsers: Default::default(),
        kept: Kept::new(config.max_bytes),
    };
    tokio::spawn(recorder.run(pieces, behind.clone()));
    Some(RecordingTap {
        queue,
        stopped: [false; 2],
        behind,
    })
}

/// The splice's end of a recording: a copy of each piece carried goes to the recorder task,
/// never waiting for it.
#[derive(Debug)]
pub struct RecordingTap {
    queue: mpsc::Sender<(Direction, Bytes)>,
    stopped: [bool; 2],
    behind: Arc<[std::sync::atomic::AtomicBool; 2]>,
}

impl RecordingTap {
    /// Hands the recorder a copy of `bytes`, just carried in `direction`. If its queue is full,
    /// that direction stops being recorded (a gap would lose the frame boundaries).
    pub fn observe(&mut self, direction: Direction, bytes: &[u8]) {
        let way = direction as usize;
        if bytes.is_empty() || self.stopped[way] {
            return;
        }
        match self
            .queue
            .try_send((direction, Bytes::copy_from_slice(bytes)))
        {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.stopped[way] = true;
                self.behind[way].store(true, std::sync::atomic::Ordering::Relaxed);
            }
            // The recorder gave up (unreadable frames both ways): nothing more to copy.
            Err(mpsc::error::TrySendError::Closed(_)) => self.stopped = [true; 2],
        }
    }
}

/// The recorder task's state.
struct Recorder {
    request_id: u64,
    emit: Emit,
    parsers: [FrameParser; 2],
    kept: Kept,
}

impl Recorder {
    async fn run(
        mut self,
        mut pieces: mpsc::Receiver<(Direction, Bytes)>,
        behind: Arc<[std::sync::atomic::AtomicBool; 2]>,
    ) {
        while let Some((direction, bytes)) = pieces.recv().await {
            self.feed(direction, &bytes);
            if self.parsers.iter().all(FrameParser::failed) {
                break;
            }
        }
        for (way, name) in [(0, "kubectl → API server"), (1, "API server → kubectl")] {
            if behind[way].load(std::sync::atomic::Ordering::Relaxed) {
                self.kept.truncate(format!(
                    "the recorder fell behind; later {name} bytes are not recorded"
                ));
            }
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
        if let Err(e) = parser.feed(bytes, |observed| kept.take(observed)) {
            kept.truncate(format!(
                "{direction:?}: {e}; the rest of it is not recorded"
            ));
        }
        for (channel, offset, data) in self.kept.pieces.drain(..) {
            (self.emit)(AuditEventKind::StreamData(StreamData {
                request_id: self.request_id,
                channel,
                offset,
                data_base64: base64::engine::general_purpose::STANDARD.encode(data),
            }));
        }
    }
}

/// What is kept of a stream, and the counts that go on past the cap.
struct Kept {
    max_bytes: u64,
    recorded: u64,
    status: u64,
    total: u64,
    offsets: [u64; 256],
    pieces: Vec<(u8, u64, Vec<u8>)>,
    reason: Option<String>,
    close_code: Option<u16>,
}

impl Kept {
    fn new(max_bytes: u64) -> Self {
        Self {
            max_bytes,
            recorded: 0,
            status: 0,
            total: 0,
            offsets: [0; 256],
            pieces: Vec::new(),
            reason: None,
            close_code: None,
        }
    }

    fn take(&mut self, observed: Observed<'_>) {
        match observed {
            Observed::Data { channel, data } => self.keep(channel, data),
            Observed::Text { len } => {
                self.total += len as u64;
                self.truncate("text messages are not recorded".into());
            }
            Observed::Close { code, .. } => self.close_code = self.close_code.or(code),
        }
    }

    fn keep(&mut self, channel: u8, data: &[u8]) {
        let len = data.len() as u64;
        self.total += len;
        let offset = self.offsets[usize::from(channel)];
        self.offsets[usize::from(channel)] += len;
        let status = channel == STATUS_CHANNEL;
        let room = if status {
            STATUS_LIMIT - self.status
        } else {
            self.max_bytes - self.recorded
        };
        let keep = len.min(room);
        if keep < len {
            self.truncate(format!(
                "the recording cap of {} bytes was reached",
                self.max_bytes
            ));
        }
        if keep == 0 {
            return;
        }
        *if status {
            &mut self.status
        } else {
            &mut self.recorded
        } += keep;
        let data = &data[..usize::try_from(keep).unwrap_or(data.len())];
        match self.pieces.last_mut() {
            Some((c, at, bytes)) if *c == channel && *at + bytes.len() as u64 == offset => {
                bytes.extend_from_slice(data);
            }
            _ => self.pieces.push((channel, offset, data.to_vec())),
        }
    }

    /// Marks the recording incomplete; the first reason is the one reported.
    fn truncate(&mut self, reason: String) {
        self.reason.get_or_insert(reason);
    }

    fn summary(&self, request_id: u64) -> RecordingEnded {
        RecordingEnded {
            request_id,
            recorded_bytes: self.recorded + self.status,
            total_bytes: self.total,
            truncated: self.reason.is_some(),
            reason: self.reason.clone(),
            close_code: self.close_code,
        }
    }
}

#[cfg(test)]
mod tests;
