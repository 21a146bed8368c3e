//! The writer task: takes batches from the queue (1,000 events, 50 ms after the oldest, or a
//! flush, whichever first), appends them to the current segment, syncs, and publishes progress.

use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::segment::{self, Segment};
use super::Shared;

/// Pause after a failed write before the batch is tried again (in a new segment).
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The segment being appended to.
struct Output {
    dir: PathBuf,
    file: Option<File>,
    number: u64,
    /// Bytes synced in the current segment.
    synced: u64,
}

/// The outcome of writing one batch.
struct Written {
    /// Segments whose state changed (sealed, or grown), in order.
    touched: Vec<Segment>,
    /// Lines of the batch now durable (all of them, unless `error`).
    durable_lines: usize,
    error: Option<io::Error>,
}

pub(super) async fn run(shared: Arc<Shared>, first_segment: u64) {
    write_batches(&shared, first_segment).await;
    // Whatever the reason, nothing will be synced any more: say so to `record` and `flush`.
    shared.lock().writer_stopped = true;
    shared.progress.send_modify(|p| p.stopped = true);
}

async fn write_batches(shared: &Arc<Shared>, first_segment: u64) {
    let mut output = Output {
        dir: shared.dir.clone(),
        file: None,
        number: first_segment,
        synced: 0,
    };
    while let Some((lines, upto)) = next_batch(shared).await {
        let segment_bytes = shared.config.segment_bytes;
        let job = tokio::task::spawn_blocking(move || {
            let written = output.write(&lines, segment_bytes);
            (output, lines, written)
        });
        let (back, mut lines, written) = match job.await {
            Ok(done) => done,
            Err(e) => {
                shared.failed(format!("spool writer stopped: {e}"));
                return;
            }
        };
        output = back;
        let not_durable = (lines.len() - written.durable_lines) as u64;
        publish(shared, &written.touched, upto - not_durable);
        if let Some(e) = written.error {
            tracing::error!(dir = %shared.dir.display(), error = %e, pending = lines.len(),
                "spool write failed; retrying in a new segment");
            shared.failed(e.to_string());
            lines.drain(..written.durable_lines);
            if !requeue(shared, lines) {
                return;
            }
            tokio::time::sleep(RETRY_AFTER).await;
        }
    }
}

/// Waits until a batch is due and takes it, with the count of events recorded up to its end.
/// `None` once the sink is gone and the queue is empty.
async fn next_batch(shared: &Shared) -> Option<(Vec<Vec<u8>>, u64)> {
    loop {
        let due = {
            let mut state = shared.lock();
            if state.queue.is_empty() {
                if state.closed {
                    return None;
                }
                None
            } else {
                let due = state.first_queued.map(|t| t + shared.config.sync_interval);
                let ready = state.closed
                    || state.flush_wanted
                    || state.queue.len() >= shared.config.sync_batch
                    || due.is_none_or(|d| d <= Instant::now());
                if ready {
                    state.flush_wanted = false;
                    state.first_queued = None;
                    return Some((std::mem::take(&mut state.queue), state.recorded));
                }
                due
            }
        };
        match due {
            Some(due) => {
                tokio::select! {
                    () = shared.wake.notified() => {}
                    () = tokio::time::sleep_until(due) => {}
                }
            }
            None => shared.wake.notified().await,
        }
    }
}

/// Records what is now on disk, and wakes `flush` callers and the shipper.
fn publish(shared: &Shared, touched: &[Segment], synced: u64) {
    {
        let mut state = shared.lock();
        for segment in touched {
            match state
                .segments
                .iter_mut()
                .rev()
                .find(|s| s.number == segment.number)
            {
                Some(known) => *known = *segment,
                None => state.segments.push_back(*segment),
            }
        }
    }
    shared
        .progress
        .send_modify(|p| p.synced = p.synced.max(synced));
}

/// Puts lines that did not reach the disk back at the front of the queue; `false` when the sink
/// is gone, and they are lost (logged).
fn requeue(shared: &Shared, lines: Vec<Vec<u8>>) -> bool {
    let mut state = shared.lock();
    if state.closed {
        tracing::error!(dir = %shared.dir.display(), lost = lines.len(),
            "spool closed while writes fail; audit events lost");
        return false;
    }
    state.queue.splice(0..0, lines);
    state.first_queued = Some(Instant::now());
    true
}

impl Shared {
    fn failed(&self, error: String) {
        self.progress.send_modify(|p| {
            p.failures += 1;
            p.last_error = Some(error);
        });
    }
}

impl Output {
    /// Appends `lines`, starting a new segment whenever the current one would pass
    /// `segment_bytes`, and syncs. On error the current segment is sealed at its synced length
    /// and the next batch goes to a new one.
    fn write(&mut self, lines: &[Vec<u8>], segment_bytes: u64) -> Written {
        let mut written = Written {
            touched: Vec::new(),
            durable_lines: 0,
            error: None,
        };
        if let Err(e) = self.append(lines, segment_bytes, &mut written) {
            written.touched.push(self.abandon());
            written.error = Some(e);
        }
        written
    }

    fn append(
        &mut self,
        lines: &[Vec<u8>],
        segment_bytes: u64,
        written: &mut Written,
    ) -> io::Result<()> {
        let mut buffer = Vec::new();
        let mut buffered_lines = 0;
        for line in lines {
            let size = self.synced + (buffer.len() + line.len()) as u64;
            if self.file.is_some() && size > segment_bytes && self.synced + buffer.len() as u64 > 0
            {
                self.sync(&buffer)?;
                written.durable_lines += std::mem::take(&mut buffered_lines);
                buffer.clear();
                written.touched.push(self.seal());
            }
            if self.file.is_none() {
                self.file = Some(crate::fsutil::create_new_private(&segment::path(
                    &self.dir,
                    self.number,
                ))?);
                crate::fsutil::sync_dir(&self.dir)?;
            }
            buffer.extend_from_slice(line);
            buffered_lines += 1;
        }
        self.sync(&buffer)?;
        written.durable_lines += buffered_lines;
        written.touched.push(Segment {
            number: self.number,
            durable_len: self.synced,
            sealed: false,
        });
        Ok(())
    }

    fn sync(&mut self, bytes: &[u8]) -> io::Result<()> {
        if let Some(file) = self.file.as_mut() {
            file.write_all(bytes)?;
            file.sync_data()?;
            self.synced += bytes.len() as u64;
        }
        Ok(())
    }

    /// Closes the current segment; the next line starts a new one.
    fn seal(&mut self) -> Segment {
        let sealed = Segment {
            number: self.number,
            durable_len: self.synced,
            sealed: true,
        };
        self.file = None;
        self.number += 1;
        self.synced = 0;
        sealed
    }

    /// Seals the current segment after a failed write, cutting what may be half written.
    fn abandon(&mut self) -> Segment {
        if let Some(file) = self.file.as_ref() {
            // Best effort: if this fails too, recovery skips the unparseable rest with a warning.
            let _ = file.set_len(self.synced);
        }
        self.seal()
    }
}
