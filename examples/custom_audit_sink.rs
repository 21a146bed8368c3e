//! Run with: `cargo run -p kms-pam-examples --example custom_audit_sink`
//!
//! An `AuditSink` that forwards events somewhere of the embedder's choosing — here a channel
//! drained by a task that writes one CSV line per finished request (a SIEM forwarder, a message
//! queue or a webhook would sit in the same place). `record` never blocks: it hands the event to a
//! bounded channel and reports `Full` when the consumer falls behind.

use std::sync::Arc;

use async_trait::async_trait;
use kms_pam::audit::{AuditError, AuditEvent, AuditEventKind, AuditSink};
use kms_pam_tests::harness::{InProcessPath, PathOptions};
use tokio::sync::{mpsc, oneshot};

enum Message {
    Event(Box<AuditEvent>),
    Flush(oneshot::Sender<()>),
}

/// Forwards events to a consumer task.
struct ChannelSink {
    queue: mpsc::Sender<Message>,
}

#[async_trait]
impl AuditSink for ChannelSink {
    fn record(&self, event: AuditEvent) -> Result<(), AuditError> {
        self.queue
            .try_send(Message::Event(Box::new(event)))
            .map_err(|e| AuditError::full(e.to_string()))
    }

    async fn flush(&self) -> Result<(), AuditError> {
        let (done, flushed) = oneshot::channel();
        self.queue
            .send(Message::Flush(done))
            .await
            .map_err(|_| AuditError::failed("consumer stopped"))?;
        flushed
            .await
            .map_err(|_| AuditError::failed("consumer stopped"))
    }
}

/// The consumer: one CSV line per request, joining start and finish by request id.
async fn write_csv(mut queue: mpsc::Receiver<Message>) {
    let mut started = std::collections::HashMap::new();
    println!("session,command,verb,resource,status,bytes_out,ms");
    while let Some(message) = queue.recv().await {
        let event = match message {
            Message::Event(event) => event,
            Message::Flush(done) => {
                let _ = done.send(());
                continue;
            }
        };
        match event.kind {
            AuditEventKind::RequestStarted(r) => {
                started.insert(r.request_id, r);
            }
            AuditEventKind::RequestFinished(f) => {
                if let Some(r) = started.remove(&f.request_id) {
                    println!(
                        "{},{},{},{},{},{},{}",
                        event.session_id,
                        r.kubectl_command.as_deref().unwrap_or("-"),
                        r.info.verb,
                        r.info.resource.as_deref().unwrap_or("-"),
                        f.status,
                        f.bytes_out,
                        f.duration_ms
                    );
                }
            }
            _ => {}
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (queue, consumer) = mpsc::channel(1024);
    let writer = tokio::spawn(write_csv(consumer));
    let sink = Arc::new(ChannelSink { queue });
    let path = InProcessPath::start_with(PathOptions {
        extra_audit: Some(sink.clone()),
        ..PathOptions::default()
    })
    .await;
    for args in [&["get", "pods"][..], &["get", "deployments"]] {
        let out = path.kubectl.run(args).await;
        anyhow::ensure!(out.success(), "kubectl {}: {}", args.join(" "), out.stderr);
    }
    path.shutdown().await;
    sink.flush().await?;
    drop(sink);
    writer.await?;
    Ok(())
}
