//! The small state files of a spool: `heads.json` (the chain head of every session whose events
//! left the spool) and `ack.json` (how far the uploader got).

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::audit::write::{AuditEvent, AuditEventKind, ChainHead};
use crate::session::SessionId;

const HEADS: &str = "heads.json";
const ACK: &str = "ack.json";

/// A session whose last event is older than this is taken as over (its gateway died before its
/// `SessionEnded`), and its head is forgotten.
const HEAD_KEPT_FOR: Duration = Duration::from_secs(7 * 24 * 3600);

/// A session's chain head, and when its last event happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct HeadRecord {
    seq: u64,
    hash: String,
    #[serde(with = "crate::time::rfc3339_millis")]
    time: SystemTime,
}

/// Chain heads by session.
pub(super) type Heads = HashMap<SessionId, HeadRecord>;

/// Moves `heads` past `event`. An ended session needs no head: nothing continues its chain after
/// a restart.
pub(super) fn fold(heads: &mut Heads, event: &AuditEvent) {
    if event.seq == 0 {
        return;
    }
    if matches!(event.kind, AuditEventKind::SessionEnded { .. }) {
        heads.remove(&event.session_id);
        return;
    }
    let record = HeadRecord {
        seq: event.seq,
        hash: event.hash.clone(),
        time: event.time,
    };
    heads.insert(event.session_id.clone(), record);
}

/// The heads as a [`ChainingSink`](crate::audit::ChainingSink) resumes them.
pub(super) fn chain_heads(heads: Heads) -> HashMap<SessionId, ChainHead> {
    heads
        .into_iter()
        .map(|(id, h)| {
            let head = ChainHead {
                seq: h.seq,
                hash: h.hash,
            };
            (id, head)
        })
        .collect()
}

/// Reads `heads.json`; a missing file is no heads. A corrupt one is logged and ignored: the
/// chains of sessions open across that restart then break visibly at verification.
pub(super) fn read_heads(dir: &Path) -> io::Result<Heads> {
    match fs::read(dir.join(HEADS)) {
        Ok(bytes) => Ok(serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::error!(dir = %dir.display(), error = %e,
                "spool heads.json is corrupt; open sessions' chains cannot be continued");
            Heads::new()
        })),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Heads::new()),
        Err(e) => Err(e),
    }
}

/// Replaces `heads.json` durably (written, synced, renamed, directory synced), leaving out
/// sessions silent for [`HEAD_KEPT_FOR`].
pub(super) fn write_heads(dir: &Path, heads: &mut Heads) -> io::Result<()> {
    let now = SystemTime::now();
    heads.retain(|_, h| {
        now.duration_since(h.time)
            .map_or(true, |age| age < HEAD_KEPT_FOR)
    });
    let bytes = serde_json::to_vec(heads).map_err(io::Error::other)?;
    replace(dir, HEADS, &bytes, true)
}

/// Reads `ack.json`: the segment and byte offset the uploader acknowledged up to. Missing or
/// corrupt means nothing was acknowledged; KMS drops the events shipped again by id.
pub(super) fn read_ack(dir: &Path) -> io::Result<(u64, u64)> {
    #[derive(Deserialize)]
    struct Ack {
        segment: u64,
        offset: u64,
    }
    match fs::read(dir.join(ACK)) {
        Ok(bytes) => Ok(serde_json::from_slice::<Ack>(&bytes).map_or_else(
            |e| {
                tracing::warn!(dir = %dir.display(), error = %e,
                    "spool ack.json is corrupt; unacknowledged events may be shipped again");
                (0, 0)
            },
            |ack| (ack.segment, ack.offset),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok((0, 0)),
        Err(e) => Err(e),
    }
}

/// Replaces `ack.json`. Not synced: losing it only ships some events again.
pub(super) fn write_ack(dir: &Path, segment: u64, offset: u64) -> io::Result<()> {
    let bytes = serde_json::json!({ "segment": segment, "offset": offset }).to_string();
    replace(dir, ACK, bytes.as_bytes(), false)
}

fn replace(dir: &Path, name: &str, bytes: &[u8], durable: bool) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut file = crate::fsutil::open_private(&tmp, true)?;
    file.write_all(bytes)?;
    if durable {
        file.sync_all()?;
    }
    fs::rename(&tmp, dir.join(name))?;
    if durable {
        crate::fsutil::sync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::SessionStatus;

    #[test]
    fn heads_follow_events_and_forget_ended_and_stale_sessions() {
        let dir = tempfile::tempdir().unwrap();
        let mut heads = Heads::new();
        let mut event = AuditEvent::now(
            SessionId::new("s"),
            AuditEventKind::SessionEnded {
                status: SessionStatus::Ended,
                ended_at: None,
                end_cause: None,
            },
        );
        let unchained = event.clone();
        fold(&mut heads, &unchained);
        assert!(heads.is_empty(), "unchained events move nothing");
        event.seq = 4;
        event.hash = "h".into();
        heads.insert(
            SessionId::new("s"),
            HeadRecord {
                seq: 3,
                hash: "g".into(),
                time: SystemTime::now(),
            },
        );
        fold(&mut heads, &event);
        assert!(heads.is_empty(), "an ended session has no head");

        let old = SystemTime::now() - HEAD_KEPT_FOR - Duration::from_secs(1);
        let record = |time| HeadRecord {
            seq: 1,
            hash: "x".into(),
            time,
        };
        heads.insert(SessionId::new("old"), record(old));
        heads.insert(SessionId::new("new"), record(SystemTime::now()));
        write_heads(dir.path(), &mut heads).unwrap();
        let back = read_heads(dir.path()).unwrap();
        assert_eq!(back.keys().collect::<Vec<_>>(), [&SessionId::new("new")]);
    }

    #[test]
    fn missing_or_corrupt_state_files_mean_nothing_recorded() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_ack(dir.path()).unwrap(), (0, 0));
        assert!(read_heads(dir.path()).unwrap().is_empty());
        fs::write(dir.path().join(ACK), b"{not json").unwrap();
        fs::write(dir.path().join(HEADS), b"[1,2").unwrap();
        assert_eq!(read_ack(dir.path()).unwrap(), (0, 0));
        assert!(read_heads(dir.path()).unwrap().is_empty());
        write_ack(dir.path(), 3, 120).unwrap();
        assert_eq!(read_ack(dir.path()).unwrap(), (3, 120));
    }
}
