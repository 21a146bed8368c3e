//! The read model: a session's events read back. Requests are grouped into the kubectl commands
//! that made them ([`group_commands`], with what each command claims to do), and recorded exec
//! and attach streams are replayed ([`recordings`], [`replay`]).

mod commands;
mod replay;

pub use commands::{
    group_commands, Command, CommandLine, Outcome, RequestState, RequestSummary, StreamSummary,
};
pub use replay::{recordings, replay, RecordedChunk, Recording};
