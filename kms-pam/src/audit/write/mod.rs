//! The write path: the events a session produces ([`AuditEvent`]), the [`AuditSink`] trait that
//! receives them, the sinks (memory, null, tee, JSON lines) and the [`spool`] that keeps events
//! on disk until KMS has them.

mod event;
mod jsonl;
mod sinks;
pub(crate) mod spool;

use async_trait::async_trait;

pub use event::{
    AuditEvent, AuditEventKind, ChainHead, RecordingEnded, RecordingGap, RequestFinished,
    RequestStarted, StreamClosed, StreamData, StreamDetails,
};
pub use jsonl::JsonLinesSink;
pub use sinks::{MemoryAuditSink, NullAuditSink, TeeAuditSink};

/// Errors of an [`AuditSink`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The sink cannot take more events now (a bounded buffer or spool is full). The event was not
    /// recorded; the caller logs this and counts it, it never drops silently.
    #[error("audit sink full: {0}")]
    Full(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Writing or delivering failed (disk, network, control plane).
    #[error("audit sink failed: {0}")]
    Failed(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl AuditError {
    /// A [`AuditError::Full`] with the sink's own reason (a message or an error).
    pub fn full(reason: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Full(reason.into())
    }

    /// A [`AuditError::Failed`] with the underlying failure (a message or an error).
    pub fn failed(reason: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Failed(reason.into())
    }
}

/// Receives the events of sessions: request started/finished, stream opened/closed, session
/// started/ended.
///
/// `record` is called on the request path (and from `Drop` of response bodies), so it must not block
/// or wait on I/O: implementations buffer (a channel, a spool appended by a writer task) and return.
/// Returning `Err` means the event was *not* accepted.
///
/// `flush` waits until every event accepted before the call is as durable as the sink can make it
/// (written and synced to a file, acknowledged by KMS, ...). Gateways flush on session end and on
/// shutdown. A sink that keeps nothing (a null sink) returns `Ok` at once.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait AuditSink: Send + Sync + 'static {
    /// Accepts one event without blocking.
    fn record(&self, event: AuditEvent) -> Result<(), AuditError>;

    /// Makes everything accepted so far durable.
    async fn flush(&self) -> Result<(), AuditError>;
}
