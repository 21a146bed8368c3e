//! Audit: the typed events of a session and the [`AuditSink`] trait that receives them, in three
//! rooms with one purpose each, and the recording settings of streams.
//!
//! - [`write`], the write path: the events, [`AuditSink`], the sinks, and the
//!   [`spool`](write::spool) that keeps events on disk until KMS has them.
//! - [`evidence`], session tracking's proof (docs/session-tracking.md):
//!   [`chain`](evidence::chain) makes each session's events a hash chain,
//!   [`signing`](evidence::signing) has the gateway sign every link and KMS sign the session's
//!   head, and [`evidence`] verifies a session's record (and packs it into a bundle to verify
//!   offline).
//! - [`read`], the read model: requests grouped into kubectl commands, with what each claims to
//!   do, and recorded exec and attach streams replayed.
//! - [`recording`]: what is recorded of exec and attach streams (policy, caps, stream details).

pub mod evidence;
pub mod read;
pub mod recording;
pub mod write;

pub use evidence::chain::{verify_chain, ChainReport, ChainingSink};
pub use read::{group_commands, Command, RequestSummary, StreamSummary};
pub use write::spool::{Spool, SpoolConfig, SpoolShipper, SpoolSink, Uploader};
#[cfg(test)]
pub(crate) use write::MockAuditSink;
pub use write::{
    AuditError, AuditEvent, AuditEventKind, AuditSink, ChainHead, JsonLinesSink, MemoryAuditSink,
    NullAuditSink, RecordingEnded, RecordingGap, RequestFinished, RequestStarted, StreamClosed,
    StreamData, StreamDetails, TeeAuditSink,
};
