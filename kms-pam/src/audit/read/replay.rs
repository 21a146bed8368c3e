//! Recordings read back from a session's events, for `pam sessions show --recording N`.

use std::collections::HashMap;
use std::time::SystemTime;

use base64::Engine;

use crate::audit::write::{AuditEvent, AuditEventKind, RecordingEnded, StreamDetails};
use crate::session::SessionId;

/// One piece of a recording.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedChunk {
    /// When the gateway recorded it.
    pub time: SystemTime,
    /// The Kubernetes channel (1 stdout, 2 stderr, …).
    pub channel: u8,
    /// Bytes of the channel before it.
    pub offset: u64,
    /// The bytes.
    pub data: Vec<u8>,
}

/// One recorded stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recording {
    /// Its session.
    pub session_id: SessionId,
    /// What the stream was (its request id, exec command, container, tty, …).
    pub details: StreamDetails,
    /// Its pieces, in recording order.
    pub chunks: Vec<RecordedChunk>,
    /// How the recording ended; `None` when its end was not recorded (the gateway stopped).
    pub ended: Option<RecordingEnded>,
}

impl Recording {
    /// Whether everything the stream carried was recorded, to its end.
    pub fn complete(&self) -> bool {
        self.ended.as_ref().is_some_and(|e| !e.truncated)
    }

    /// The recorded bytes of one channel, in order.
    pub fn channel(&self, channel: u8) -> Vec<u8> {
        self.chunks
            .iter()
            .filter(|c| c.channel == channel)
            .flat_map(|c| c.data.iter().copied())
            .collect()
    }

    /// The command's exit code, from the `Status` on channel 3: 0 for `Success`, the
    /// `ExitCode` cause of a `NonZeroExitCode` failure.
    pub fn exit_code(&self) -> Option<i32> {
        let status: serde_json::Value = serde_json::from_slice(&self.channel(3)).ok()?;
        if status.get("status")?.as_str()? == "Success" {
            return Some(0);
        }
        let causes = status.get("details")?.get("causes")?.as_array()?;
        causes
            .iter()
            .find(|c| c.get("reason").and_then(|r| r.as_str()) == Some("ExitCode"))?
            .get("message")?
            .as_str()?
            .parse()
            .ok()
    }
}

/// The recorded streams among `events` (one session's, in `seq` order), in the order they
/// started; `pam sessions show --recording N` shows the N-th (1-based).
pub fn recordings(events: &[AuditEvent]) -> Vec<Recording> {
    let mut found: Vec<Recording> = Vec::new();
    let mut by_request: HashMap<(&SessionId, u64), usize> = HashMap::new();
    for event in events {
        let key = |request_id| (&event.session_id, request_id);
        match &event.kind {
            AuditEventKind::StreamDetails(details) if details.recorded => {
                by_request.insert(key(details.request_id), found.len());
                found.push(Recording {
                    session_id: event.session_id.clone(),
                    details: (**details).clone(),
                    chunks: Vec::new(),
                    ended: None,
                });
            }
            AuditEventKind::StreamData(piece) => {
                let Some(&index) = by_request.get(&key(piece.request_id)) else {
                    continue;
                };
                match base64::engine::general_purpose::STANDARD.decode(&piece.data_base64) {
                    Ok(data) => found[index].chunks.push(RecordedChunk {
                        time: event.time,
                        channel: piece.channel,
                        offset: piece.offset,
                        data,
                    }),
                    Err(e) => tracing::warn!(event = %event.id, error = %e,
                        "recorded stream data is not base64; skipped"),
                }
            }
            AuditEventKind::RecordingEnded(end) => {
                if let Some(&index) = by_request.get(&key(end.request_id)) {
                    found[index].ended = Some(end.clone());
                }
            }
            _ => {}
        }
    }
    found
}

/// What the user saw: stdout and stderr bytes, interleaved as they were recorded. Where a cap
/// left output out, a line at the end says how much:
/// `[kms-pam: 1048576 bytes of stdout were not recorded (recording cap)]`.
pub fn replay(recording: &Recording) -> Vec<u8> {
    let mut out: Vec<u8> = recording
        .chunks
        .iter()
        .filter(|c| c.channel == 1 || c.channel == 2)
        .flat_map(|c| c.data.iter().copied())
        .collect();
    let gaps = recording.ended.iter().flat_map(|e| &e.gaps);
    for gap in gaps.filter(|g| g.channel == 1 || g.channel == 2) {
        let name = if gap.channel == 1 { "stdout" } else { "stderr" };
        let marker = format!(
            "\r\n[kms-pam: {} bytes of {name} were not recorded (recording cap)]\r\n",
            gap.bytes
        );
        out.extend_from_slice(marker.as_bytes());
    }
    out
}
