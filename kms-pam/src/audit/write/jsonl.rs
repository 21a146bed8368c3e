//! A JSON-lines file sink: one event per line, appended by a writer task.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};

use super::{AuditError, AuditEvent, AuditSink};

/// Events waiting for the writer; beyond this `record` reports `Full` (never blocks, never drops
/// silently).
const QUEUE: usize = 65_536;

enum Command {
    Event(Box<AuditEvent>),
    Flush(oneshot::Sender<Result<(), String>>),
}

/// Appends every event as one JSON line to a file (created with mode 0600). `flush` waits until
/// everything recorded before it is written and `fsync`ed.
#[derive(Debug)]
pub struct JsonLinesSink {
    path: PathBuf,
    queue: mpsc::Sender<Command>,
}

impl JsonLinesSink {
    /// Opens (or creates) `path` for appending and starts the writer task.
    pub async fn open(path: &Path) -> Result<Self, AuditError> {
        let opened = path.to_owned();
        let file = tokio::task::spawn_blocking(move || crate::fsutil::open_private(&opened, false))
            .await
            .map_err(|e| AuditError::failed(format!("cannot open {}: {e}", path.display())))?
            .map(tokio::fs::File::from_std)
            .map_err(|e| AuditError::failed(format!("cannot open {}: {e}", path.display())))?;
        let (queue, commands) = mpsc::channel(QUEUE);
        tokio::spawn(write_loop(file, commands, path.to_owned()));
        Ok(Self {
            path: path.to_owned(),
            queue,
        })
    }
}

async fn write_loop(file: tokio::fs::File, mut commands: mpsc::Receiver<Command>, path: PathBuf) {
    let mut out = tokio::io::BufWriter::new(file);
    let mut failed: Option<String> = None;
    while let Some(command) = commands.recv().await {
        match command {
            Command::Event(event) => {
                let mut line = serde_json::to_vec(&event).unwrap_or_default();
                line.push(b'\n');
                if let Err(e) = out.write_all(&line).await {
                    tracing::error!(path = %path.display(), error = %e, "audit log write failed");
                    failed.get_or_insert(e.to_string());
                }
            }
            Command::Flush(done) => {
                let synced = async {
                    out.flush().await?;
                    out.get_ref().sync_data().await
                }
                .await;
                let outcome = match (failed.take(), synced) {
                    (Some(e), _) => Err(e),
                    (None, Err(e)) => Err(e.to_string()),
                    (None, Ok(())) => Ok(()),
                };
                let _ = done.send(outcome);
            }
        }
    }
    let _ = out.flush().await;
}

#[async_trait]
impl AuditSink for JsonLinesSink {
    fn record(&self, event: AuditEvent) -> Result<(), AuditError> {
        self.queue
            .try_send(Command::Event(Box::new(event)))
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => AuditError::full(format!(
                    "{} writer is {QUEUE} events behind",
                    self.path.display()
                )),
                mpsc::error::TrySendError::Closed(_) => {
                    AuditError::failed(format!("{} writer stopped", self.path.display()))
                }
            })
    }

    async fn flush(&self) -> Result<(), AuditError> {
        let (done, outcome) = oneshot::channel();
        self.queue
            .send(Command::Flush(done))
            .await
            .map_err(|_| AuditError::failed(format!("{} writer stopped", self.path.display())))?;
        outcome
            .await
            .map_err(|_| AuditError::failed(format!("{} writer stopped", self.path.display())))?
            .map_err(|e| AuditError::failed(format!("{}: {e}", self.path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditEventKind;
    use crate::session::{SessionId, SessionStatus};

    #[tokio::test]
    async fn writes_one_line_per_event_and_flush_makes_them_visible() {
        let path =
            std::env::temp_dir().join(format!("kms-pam-jsonl-{}.jsonl", uuid::Uuid::new_v4()));
        let sink = JsonLinesSink::open(&path).await.unwrap();
        for _ in 0..3 {
            let kind = AuditEventKind::SessionEnded {
                status: SessionStatus::Ended,
                ended_at: None,
                end_cause: None,
            };
            sink.record(AuditEvent::now(SessionId::new("s"), kind))
                .unwrap();
        }
        sink.flush().await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        let back: AuditEvent = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(back.session_id, SessionId::new("s"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_file(path).unwrap();
    }

    #[tokio::test]
    async fn unwritable_path_is_a_clear_error() {
        let err = JsonLinesSink::open(Path::new("/nonexistent-dir/audit.jsonl"))
            .await
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("/nonexistent-dir/audit.jsonl"),
            "{err}"
        );
    }
}
