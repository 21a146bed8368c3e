//! The command lines KMS searches (the Sessions page's search box): each session's commands, as
//! [`group_commands`] groups them, each as the line [`Command::line`](crate::audit::Command::line)
//! makes of it, kept in the store (migration 0910). An upload rewrites its sessions' lines; a
//! start fills in those of sessions stored before 0910.

use crate::audit::{group_commands, AuditEvent};
use crate::server::store::{Store, StoreError};
use crate::session::SessionId;

/// Sessions indexed per round of [`backfill`].
const BACKFILL_ROUND: u32 = 100;

/// Rewrites the command lines of `sessions` from their stored events.
pub(crate) async fn index(store: &dyn Store, sessions: &[SessionId]) -> Result<(), StoreError> {
    for session in sessions {
        let stored = store.session_events(session).await?;
        // An event that does not parse is left out, as the session page leaves it out.
        let events: Vec<AuditEvent> = stored
            .iter()
            .filter_map(|e| serde_json::from_str(&e.json).ok())
            .collect();
        let lines: Vec<String> = group_commands(&events)
            .iter()
            .map(|command| command.line().to_string())
            .collect();
        store.set_command_lines(session, &lines).await?;
    }
    Ok(())
}

/// Indexes every session that has recorded requests but no command lines (stored before
/// migration 0910); returns how many.
pub(crate) async fn backfill(store: &dyn Store) -> Result<usize, StoreError> {
    let mut done = 0;
    loop {
        let round = store.sessions_without_command_lines(BACKFILL_ROUND).await?;
        if round.is_empty() {
            return Ok(done);
        }
        index(store, &round).await?;
        let before = done;
        done += round.len();
        // A session whose requests make no command (none can, but a loop must end) is not
        // asked for again and again.
        let left = store.sessions_without_command_lines(BACKFILL_ROUND).await?;
        if left.iter().any(|s| round.contains(s)) {
            tracing::warn!(
                indexed = done - before,
                "some sessions' commands could not be indexed"
            );
            return Ok(done);
        }
    }
}
