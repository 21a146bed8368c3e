//! Segment files: naming, recovery after a restart (torn tails cut off), reading pending events
//! and releasing acknowledged segments. Blocking I/O; callers run it on the blocking pool.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::heads::{self, Heads};
use super::{PendingBatch, SpoolCursor};
use crate::audit::write::{AuditEvent, ChainHead};
use crate::session::SessionId;

const PREFIX: &str = "segment-";
const SUFFIX: &str = ".jsonl";

/// A segment file holding events not yet acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Segment {
    /// Its number: segments are read in this order.
    pub(super) number: u64,
    /// Bytes known to be synced; reads stop there.
    pub(super) durable_len: u64,
    /// No more events will be appended (an older process's, or the writer moved on).
    pub(super) sealed: bool,
}

/// What an earlier process left in the spool directory.
pub(super) struct Recovered {
    pub(super) segments: Vec<Segment>,
    pub(super) events: u64,
    pub(super) bytes: u64,
    pub(super) acked: (u64, u64),
    pub(super) heads: HashMap<SessionId, ChainHead>,
    pub(super) next_segment: u64,
}

pub(super) fn path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{PREFIX}{number:020}{SUFFIX}"))
}

fn list(dir: &Path) -> io::Result<Vec<u64>> {
    let mut numbers = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let number = name.to_str().and_then(|n| {
            n.strip_prefix(PREFIX)?
                .strip_suffix(SUFFIX)?
                .parse::<u64>()
                .ok()
        });
        numbers.extend(number);
    }
    numbers.sort_unstable();
    Ok(numbers)
}

/// Opens the directory (creating it, mode 0700), drops segments already acknowledged, cuts torn
/// tails, counts what is pending and rebuilds the chain heads.
pub(super) fn recover(dir: &Path) -> io::Result<Recovered> {
    crate::fsutil::create_private_dir(dir)?;
    let acked = heads::read_ack(dir)?;
    let mut heads = heads::read_heads(dir)?;
    let numbers = list(dir)?;
    let mut recovered = Recovered {
        segments: Vec::new(),
        events: 0,
        bytes: 0,
        acked,
        heads: HashMap::new(),
        next_segment: numbers.last().copied().unwrap_or(0).max(acked.0) + 1,
    };
    for number in numbers {
        let file = path(dir, number);
        if number < acked.0 {
            // Acknowledged before a crash cut the release short; its heads are in heads.json.
            remove(&file)?;
            continue;
        }
        let start = if number == acked.0 { acked.1 } else { 0 };
        let scan = scan(&file, start, &mut heads)?;
        recovered.events += scan.events;
        recovered.bytes += scan.len.saturating_sub(start);
        recovered.segments.push(Segment {
            number,
            durable_len: scan.len,
            sealed: true,
        });
    }
    recovered.heads = heads::chain_heads(heads);
    Ok(recovered)
}

struct Scan {
    len: u64,
    events: u64,
}

/// Folds every event of a segment into `heads`, counts those from `start` on, and cuts a torn
/// last line (no newline: the process died mid-write).
fn scan(file: &Path, start: u64, heads: &mut Heads) -> io::Result<Scan> {
    let bytes = fs::read(file)?;
    let mut scan = Scan { len: 0, events: 0 };
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        let end = scan.len + line.len() as u64;
        if !line.ends_with(b"\n") {
            tracing::warn!(file = %file.display(), bytes = line.len(),
                "spool segment ends with a torn line (a crash mid-write); skipping it");
            let handle = OpenOptions::new().write(true).open(file)?;
            handle.set_len(scan.len)?;
            handle.sync_all()?;
            break;
        }
        match serde_json::from_slice::<AuditEvent>(line) {
            Ok(event) => {
                heads::fold(heads, &event);
                if scan.len >= start {
                    scan.events += 1;
                }
            }
            Err(e) => tracing::warn!(file = %file.display(), offset = scan.len, error = %e,
                "spool line does not parse; it will be skipped"),
        }
        scan.len = end;
    }
    Ok(scan)
}

/// Up to `max` events after `cursor`, stopping at each segment's synced length and at the
/// segment still being written.
pub(super) fn read_pending(
    dir: &Path,
    cursor: SpoolCursor,
    segments: &[Segment],
    max: usize,
) -> io::Result<PendingBatch> {
    let mut batch = PendingBatch {
        events: Vec::new(),
        cursor,
    };
    for segment in segments.iter().filter(|s| s.number >= cursor.segment) {
        if batch.events.len() >= max {
            break;
        }
        if segment.number > batch.cursor.segment {
            batch.cursor.segment = segment.number;
            batch.cursor.offset = 0;
        }
        if batch.cursor.offset < segment.durable_len {
            read_segment(dir, segment, &mut batch, max)?;
        }
        if !segment.sealed {
            break;
        }
    }
    Ok(batch)
}

fn read_segment(
    dir: &Path,
    segment: &Segment,
    batch: &mut PendingBatch,
    max: usize,
) -> io::Result<()> {
    let file_path = path(dir, segment.number);
    let mut file = File::open(&file_path)?;
    file.seek(SeekFrom::Start(batch.cursor.offset))?;
    let mut reader = BufReader::new(file.take(segment.durable_len - batch.cursor.offset));
    let mut line = Vec::with_capacity(1024);
    while batch.events.len() < max {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 || !line.ends_with(b"\n") {
            break;
        }
        batch.cursor.offset += n as u64;
        batch.cursor.bytes += n as u64;
        match serde_json::from_slice::<AuditEvent>(&line) {
            Ok(event) => {
                batch.events.push(event);
                batch.cursor.events += 1;
            }
            Err(e) => tracing::warn!(file = %file_path.display(), error = %e,
                "skipping a spool line that does not parse"),
        }
    }
    Ok(())
}

/// Deletes acknowledged segments, after folding their chain heads into `heads.json`, then
/// records the acknowledgement.
pub(super) fn release(dir: &Path, released: &[Segment], cursor: SpoolCursor) -> io::Result<()> {
    if !released.is_empty() {
        let mut heads = heads::read_heads(dir)?;
        for segment in released {
            let mut lines = match fs::read(path(dir, segment.number)) {
                Ok(lines) => lines,
                // A segment whose creation failed holds nothing.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            lines.truncate(usize::try_from(segment.durable_len).unwrap_or(usize::MAX));
            for line in lines.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                if let Ok(event) = serde_json::from_slice::<AuditEvent>(line) {
                    heads::fold(&mut heads, &event);
                }
            }
        }
        heads::write_heads(dir, &mut heads)?;
        for segment in released {
            remove(&path(dir, segment.number))?;
        }
    }
    heads::write_ack(dir, cursor.segment, cursor.offset)
}

fn remove(file: &Path) -> io::Result<()> {
    match fs::remove_file(file) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
