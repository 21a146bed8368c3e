//! Audit: the typed events of a session and the [`AuditSink`] trait that receives them, in three
//! rooms with one purpose each, and the recording settings of streams. Their names are given
//! here, flat; the rooms are how the code is kept:
//!
//! - the write path (`audit/write`): the events ([`AuditEvent`], [`ChainHead`]), [`AuditSink`],
//!   the sinks, and the spool ([`SpoolSink`], [`Spool`], [`SpoolShipper`]) that keeps events on
//!   disk until KMS has them;
//! - [`evidence`], session tracking's proof (docs/session-tracking.md):
//!   [`chain`](evidence::chain) makes each session's events a hash chain,
//!   [`signing`](evidence::signing) has the gateway sign every link and KMS sign the session's
//!   head, and [`evidence`] verifies a session's record (and packs it into a bundle to verify
//!   offline);
//! - the read model (`audit/read`): requests grouped into kubectl commands
//!   ([`group_commands`], with what each claims to do), and recorded exec and attach streams
//!   replayed ([`recordings`], [`replay`]);
//! - [`recording`]: what is recorded of exec and attach streams (policy, caps, stream details).

pub mod evidence;
mod read;
pub mod recording;
mod write;

pub use evidence::chain::{verify_chain, ChainReport, ChainingSink};
pub use read::{
    group_commands, recordings, replay, Command, CommandLine, Outcome, RecordedChunk, Recording,
    RequestState, RequestSummary, StreamSummary,
};
pub use write::spool::{ShipperConfig, Spool, SpoolConfig, SpoolShipper, SpoolSink, Uploader};
#[cfg(test)]
pub(crate) use write::MockAuditSink;
pub use write::{
    AuditError, AuditEvent, AuditEventKind, AuditSink, ChainHead, JsonLinesSink, MemoryAuditSink,
    NullAuditSink, RecordingEnded, RecordingGap, RequestFinished, RequestStarted, StreamClosed,
    StreamData, StreamDetails, TeeAuditSink,
};
