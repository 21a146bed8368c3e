//! Sessions, the log of their status changes, and their audit events.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::super::error::StoreError;
use super::super::records::{
    ActiveSessions, ChangeRecord, EndedSessions, EventLink, EventRecord, EventSpan,
    NewSessionRecord, SessionFilter, SessionRecord, SessionUpdate,
};
use crate::session::{EndCause, SessionId};

/// Sessions and the log of their status changes.
///
/// Every status change (creation included) appends one [`ChangeRecord`] in the same
/// transaction, with a sequence number that only grows; that log is what gateways follow.
#[async_trait]
pub(crate) trait SessionStore: Send + Sync + 'static {
    /// Records a new active session.
    async fn create_session(&self, new: NewSessionRecord) -> Result<SessionUpdate, StoreError>;

    /// The session with id `id`.
    async fn session(&self, id: &SessionId) -> Result<SessionRecord, StoreError>;

    /// The project's sessions matching `filter`, newest first.
    async fn sessions(
        &self,
        project_id: &str,
        filter: &SessionFilter,
    ) -> Result<Vec<SessionRecord>, StoreError>;

    /// Ends an active session for `cause` (as `expired` if it is already past its expiry).
    /// A session that is no longer active is returned unchanged, with no sequence number.
    async fn end_session(
        &self,
        id: &SessionId,
        cause: EndCause,
        now: SystemTime,
    ) -> Result<SessionUpdate, StoreError>;

    /// Marks every active session whose expiry is at or before `now` as expired. Returns them,
    /// with the last sequence number written if any session changed.
    async fn expire_sessions(&self, now: SystemTime) -> Result<EndedSessions, StoreError>;

    /// Ends every active session `which` matches for `cause`, in one transaction (those already
    /// past their expiry as expired, like [`Self::end_session`]).
    async fn end_sessions(
        &self,
        which: &ActiveSessions,
        cause: EndCause,
        now: SystemTime,
    ) -> Result<EndedSessions, StoreError>;

    /// Records that the session's client asked about it at `now` (its heartbeat).
    async fn touch_session(&self, id: &SessionId, now: SystemTime) -> Result<(), StoreError>;

    /// At a KMS start, after an outage: when no active session was seen during the last
    /// `window` (so no client could reach any KMS), the sessions still held when the heartbeats
    /// stopped (seen within `window` of the last heartbeat) get a heartbeat at `now`, so the
    /// outage does not count against their clients. Sessions abandoned before the outage, and
    /// every session when some client was seen within `window` (another replica serving, a quick
    /// restart), are left as they are: restarts never postpone an abandonment. Returns how many
    /// sessions were given the grace.
    async fn grace_after_outage(
        &self,
        now: SystemTime,
        window: Duration,
    ) -> Result<u64, StoreError>;

    /// The highest sequence number written so far (0 when none).
    async fn latest_seq(&self) -> Result<u64, StoreError>;

    /// Changes of `gateway_id`'s sessions with `after < seq <= up_to`, oldest first, at most
    /// `limit`.
    async fn changes(
        &self,
        gateway_id: &str,
        after: u64,
        up_to: u64,
        limit: u32,
    ) -> Result<Vec<ChangeRecord>, StoreError>;

    /// Sequence numbers of changes as they commit, including those written by other processes
    /// sharing the database, so every replica wakes its waiting polls at once; `None` when the
    /// engine has no such channel (one process owns the database). Best effort: a lost or
    /// dropped notification only delays a poll to its next re-read of the log. The channel
    /// closes when the store's listener fails for good.
    async fn change_notifications(&self) -> Result<Option<mpsc::Receiver<u64>>, StoreError> {
        Ok(None)
    }
}

/// Links the uploaded events of one session to its stored chain, inside
/// [`EventStore::append_events`]'s transaction: given the session, its stored head (`None`
/// before its first event) and the stored events in the upload's `seq` range, returns the events
/// to store, or refuses the whole upload (`Conflict` or `Invalid`, returned as they are).
pub(crate) type LinkEvents<'a> = dyn Fn(&SessionId, Option<EventLink>, &[EventLink]) -> Result<Vec<EventRecord>, StoreError>
    + Send
    + Sync
    + 'a;

/// The audit events of sessions, kept once each and append-only (docs/session-tracking.md).
///
/// The store keeps what it is given; checking the hash chain is the caller's `link`, which
/// [`EventStore::append_events`] runs while it holds each session's append lock, so what it
/// checks against is what the new events are stored after, even with several KMS replicas.
#[async_trait]
pub(crate) trait EventStore: Send + Sync + 'static {
    /// Appends uploaded events in one transaction. It first takes the append lock of every
    /// span's session (callers pass each session once), held until commit: appends to one
    /// session, from any replica, run one after another, the next waiting for the lock rather
    /// than reading a head about to move. Then, per span, it reads the session's stored head and
    /// its stored events with `first_seq <= seq <= last_seq`, calls `link` and inserts what it
    /// returns; an id already stored is skipped. Returns how many events were new. `link` runs
    /// under the locks, so it should be quick (no I/O).
    ///
    /// Failure stores nothing: `link`'s error as it is; `Conflict` if another event already
    /// holds a session's `seq`; `Invalid` if a session does not exist.
    async fn append_events(
        &self,
        spans: &[EventSpan],
        received_at: SystemTime,
        link: &LinkEvents<'_>,
    ) -> Result<u64, StoreError>;

    /// Every stored event of `session`, by `seq`.
    async fn session_events(&self, session: &SessionId) -> Result<Vec<EventRecord>, StoreError>;
}
