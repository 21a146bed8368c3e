//! Sessions, their change log, their audit events and signed heads, recording policies.

use std::time::SystemTime;

use crate::session::{EndCause, PersonIdentity, Session, SessionId, SessionStatus};

use super::super::crypto::TokenHash;
use super::org::{GatewayRecord, UserRecord};
use super::pam::AccountRecord;

/// A session with the ids the store keeps beside the names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SessionRecord {
    /// The session as the API shows it.
    pub session: Session,
    /// Why it ended.
    pub end_cause: Option<EndCause>,
    /// Owning project.
    pub project_id: String,
    /// User id.
    pub user_id: String,
    /// Resource id (the resource may since have been deleted).
    pub resource_id: String,
    /// Account id (the account may since have been deleted).
    pub account_id: String,
    /// Gateway id.
    pub gateway_id: String,
    /// The grant it was opened under; `None` when its user needed none (an administrator).
    pub grant_id: Option<String>,
    /// When its user's client last asked about it (its heartbeat; creation counts as one).
    pub last_seen_at: SystemTime,
    /// The network address KMS saw the session requested from (`None` before migration 0600).
    pub client_address: Option<String>,
    /// The `User-Agent` of the client that requested it (the CLI names itself and its version).
    pub user_agent: Option<String>,
    /// Who its user is at the OpenID provider they signed in with (single sign-on only).
    pub identity: Option<PersonIdentity>,
}

/// What is needed to record a new active session.
#[derive(Clone, Debug)]
pub(crate) struct NewSessionRecord {
    /// Identifier (also in the session certificate, so chosen before the insert).
    pub id: SessionId,
    /// Owning project.
    pub project_id: String,
    /// The user.
    pub user: UserRecord,
    /// The account (and through it the resource).
    pub account: AccountRecord,
    /// The gateway serving it.
    pub gateway: GatewayRecord,
    /// The grant it is opened under; `None` for an administrator, who needs none.
    pub grant_id: Option<String>,
    /// The hash of the API token (or single sign-on access token) the request came with: the
    /// session is stored only while it is still the user's (not rotated away, not revoked).
    /// `None`: not checked.
    pub token: Option<TokenHash>,
    /// Who the user is at the OpenID provider they signed in with (single sign-on only).
    pub identity: Option<PersonIdentity>,
    /// Reason given by the user.
    pub reason: Option<String>,
    /// Creation time.
    pub created_at: SystemTime,
    /// Expiry.
    pub expires_at: SystemTime,
    /// The network address the request came from.
    pub client_address: Option<String>,
    /// The requesting client's `User-Agent`.
    pub user_agent: Option<String>,
    /// The gateway audit key the session's events must be signed with and KMS's signature
    /// binding it to the session; `None` when the gateway has no endorsed key yet.
    pub key: Option<SessionKeyRecord>,
}

/// KMS's binding of a session to its gateway's audit key, made when the session is created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SessionKeyRecord {
    /// The gateway's audit key (base64).
    pub gateway_key: String,
    /// KMS's signature over the session id and that key (base64).
    pub ticket: String,
}

/// Which sessions to list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SessionFilter {
    /// Only sessions still marked active.
    pub active_only: bool,
    /// Only this user's.
    pub user: Option<SessionOwner>,
    /// Only this resource's (by name, so history of deleted resources stays searchable).
    pub resource: Option<String>,
}

/// Whose sessions a listing keeps. A user is an id, never a name: a name is free again once its
/// user is deleted, and whoever takes it must not inherit the deleted user's sessions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SessionOwner {
    /// The user with this id.
    User(String),
    /// Users deleted while they had this name (any case): their sessions keep it as spelt then.
    Deleted(String),
}

/// One page of the console's session list (`ConsoleStore::session_page`):
/// sessions matching every field that is set, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SessionSearch {
    /// Only sessions with this status (`active`, `ended`, `expired`, `terminated`).
    pub status: Option<String>,
    /// Only this user's.
    pub user: Option<SessionOwner>,
    /// Only this resource's (by name).
    pub resource: Option<String>,
    /// Text found in the session's id, user, resource, account or reason; or words (split at
    /// white space, in any order, case aside) all found in one of its command lines
    /// ([`crate::audit::Command::line`]: `get pods`, `describe deployment my-app`, `echo hi`).
    pub text: Option<String>,
    /// Only sessions created at or after this instant.
    pub from: Option<SystemTime>,
    /// Only sessions created before this instant.
    pub to: Option<SystemTime>,
    /// Rows to skip.
    pub offset: u64,
    /// Rows to return at most.
    pub limit: u32,
}

/// What `ConsoleStore::session_page` finds.
#[derive(Clone, Debug)]
pub(crate) struct SessionPage {
    /// The page's sessions, newest first.
    pub sessions: Vec<SessionRecord>,
    /// Whether more match after this page.
    pub more: bool,
}

/// Which active sessions to end at once (`SessionStore::end_sessions`):
/// those matching every field that is set. The default matches every active session.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ActiveSessions {
    /// Only this project's.
    pub project_id: Option<String>,
    /// Only this user's.
    pub user_id: Option<String>,
    /// Only those served by this gateway.
    pub gateway_id: Option<String>,
    /// Only those opened under this grant.
    pub grant_id: Option<String>,
    /// Only this resource's.
    pub resource_id: Option<String>,
    /// Only this account's.
    pub account_id: Option<String>,
    /// Only those opened without a grant (by an administrator).
    pub without_grant: bool,
    /// Only those whose client was last seen before this instant (abandoned).
    pub seen_before: Option<SystemTime>,
}

/// Sessions ended by one `SessionStore::end_sessions` call.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct EndedSessions {
    /// The sessions that ended.
    pub ids: Vec<SessionId>,
    /// The last change sequence number written, if any session ended.
    pub seq: Option<u64>,
}

/// A session after a write, with the change sequence number the write produced, if it
/// changed the status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SessionUpdate {
    /// The session as it is now.
    pub record: SessionRecord,
    /// Sequence number of the recorded status change; `None` when nothing changed.
    pub seq: Option<u64>,
}

/// One entry of the session change log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ChangeRecord {
    /// Position in the log (strictly increasing, never reused).
    pub seq: u64,
    /// The session.
    pub session_id: SessionId,
    /// Its new status.
    pub status: SessionStatus,
}

/// One audit event of a session as stored: its chain position and the JSON text its hash covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EventRecord {
    /// The event id (the idempotency key of uploads).
    pub id: String,
    /// Its session.
    pub session_id: SessionId,
    /// Its position in the session's hash chain (1, 2, 3, …).
    pub seq: u64,
    /// Its chain hash.
    pub hash: String,
    /// The event as JSON text.
    pub json: String,
}

/// One session's part of an upload: the range of `seq` its events cover.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EventSpan {
    /// The session.
    pub session_id: SessionId,
    /// The lowest `seq` uploaded.
    pub first_seq: u64,
    /// The highest `seq` uploaded.
    pub last_seq: u64,
}

/// Where a session's stored chain stands at one position: enough to link the next event and to
/// recognise an event sent again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EventLink {
    /// Position in the chain.
    pub seq: u64,
    /// Event id.
    pub id: String,
    /// Chain hash.
    pub hash: String,
}

/// KMS's signed head of a session, as stored: the JSON that was signed and the signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HeadRecord {
    /// The session.
    pub session_id: SessionId,
    /// The signed [`SessionHead`](crate::audit::evidence::SessionHead), as JSON text.
    pub head: String,
    /// KMS's signature (base64).
    pub signature: String,
    /// When KMS signed.
    pub sealed_at: SystemTime,
}

/// A resource's recording policy as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RecordingPolicyRecord {
    /// `deny` or `allow`.
    pub unrecorded_streams: String,
    /// Recording cap in bytes, when the resource sets one.
    pub max_bytes: Option<u64>,
    /// Input recording cap in bytes, when the resource sets one.
    pub max_input_bytes: Option<u64>,
}
