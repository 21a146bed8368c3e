//! What the web console keeps.

use std::time::SystemTime;

use async_trait::async_trait;

use super::super::crypto::TokenHash;
use super::super::error::StoreError;
use super::super::records::{SessionPage, SessionSearch, UserRecord};
use crate::session::SessionId;

/// What the web console keeps: one-time sign-in codes and signed-in browsers, both by the hash of
/// what their holder presents; and the session list one page at a time.
#[async_trait]
pub(crate) trait ConsoleStore: Send + Sync + 'static {
    /// Stores a one-time sign-in code for `user_id`, valid until `expires_at`.
    async fn create_console_link(
        &self,
        code: &TokenHash,
        user_id: &str,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> Result<(), StoreError>;

    /// Spends the sign-in code and returns its user, if it is unspent and still valid at `now`;
    /// `NotFound` otherwise, whatever the reason.
    async fn redeem_console_link(
        &self,
        code: &TokenHash,
        now: SystemTime,
    ) -> Result<UserRecord, StoreError>;

    /// Records a signed-in browser of `user_id`.
    async fn create_console_session(
        &self,
        id: &TokenHash,
        user_id: &str,
        now: SystemTime,
    ) -> Result<(), StoreError>;

    /// The user of the signed-in browser `id` if it was seen after `idle_since` (and records
    /// that it was seen `now`); `NotFound` if it is unknown, idle too long, or its user deleted.
    async fn console_session_user(
        &self,
        id: &TokenHash,
        idle_since: SystemTime,
        now: SystemTime,
    ) -> Result<UserRecord, StoreError>;

    /// Forgets the signed-in browser `id` (sign-out). Unknown ids are not an error.
    async fn delete_console_session(&self, id: &TokenHash) -> Result<(), StoreError>;

    /// One page of the project's sessions matching `search`, newest first.
    async fn session_page(
        &self,
        project_id: &str,
        search: &SessionSearch,
    ) -> Result<SessionPage, StoreError>;

    /// How many kubectl commands (as [`crate::audit::group_commands`] groups them) each of
    /// `sessions` holds, in the same order; answered from an index, without reading the events.
    async fn command_counts(&self, sessions: &[SessionId]) -> Result<Vec<u64>, StoreError>;

    /// Replaces the command lines the search finds `session` by ([`crate::audit::Command::line`]
    /// of each of its commands, in order).
    async fn set_command_lines(
        &self,
        session: &SessionId,
        lines: &[String],
    ) -> Result<(), StoreError>;

    /// Up to `limit` sessions that have recorded requests but no command lines (stored before
    /// migration 0910, or whose lines could not be written).
    async fn sessions_without_command_lines(
        &self,
        limit: u32,
    ) -> Result<Vec<SessionId>, StoreError>;
}
