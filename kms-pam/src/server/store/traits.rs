//! The storage traits, one per entity. Every method is one short transaction; the failure
//! semantics of [`StoreError`] apply to all of them.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::records::{
    AccountChange, AccountRecord, ActiveSessions, ChangeRecord, EndedSessions, Enrollment,
    EventLink, EventRecord, EventSpan, GatewayRecord, GrantRecord, HeadRecord, MemberRecord,
    NewAccount, NewGateway, NewGrant, NewResource, NewSessionRecord, NewUser, ProjectRecord,
    RecordingPolicyRecord, ResourceRecord, SessionFilter, SessionPage, SessionRecord,
    SessionSearch, SessionUpdate, UserRecord,
};
use super::{StoreError, TokenHash};
use crate::kms::api::ProjectRole;
use crate::secret::Secret;
use crate::session::{EndCause, SessionId};
use crate::tls::PrivateKeyPem;

/// The KMS certificate authority as stored: certificate in clear, key sealed.
#[derive(Debug, Clone)]
pub(crate) struct StoredCa {
    /// CA certificate (PEM).
    pub cert_pem: String,
    /// CA private key (PEM), already unsealed.
    pub key: PrivateKeyPem,
}

/// Everything the KMS keeps. Implemented for every type that implements all entity traits.
pub(crate) trait Store:
    SetupStore
    + ProjectStore
    + UserStore
    + GatewayStore
    + ResourceStore
    + AccountStore
    + GrantStore
    + SessionStore
    + EventStore
    + ConsoleStore
    + AuditStore
{
}

impl<T> Store for T where
    T: SetupStore
        + ProjectStore
        + UserStore
        + GatewayStore
        + ResourceStore
        + AccountStore
        + GrantStore
        + SessionStore
        + EventStore
        + ConsoleStore
        + AuditStore
{
}

/// What the first start creates: projects and the CA.
#[async_trait]
pub(crate) trait SetupStore: Send + Sync + 'static {
    /// The project named `name`, created if absent.
    async fn ensure_project(
        &self,
        name: &str,
        now: SystemTime,
    ) -> Result<ProjectRecord, StoreError>;

    /// The stored CA, if one was saved.
    async fn ca(&self) -> Result<Option<StoredCa>, StoreError>;

    /// Saves the CA (key sealed). `Conflict` if one is already stored (another replica won).
    async fn save_ca(&self, ca: &StoredCa) -> Result<(), StoreError>;

    /// Closes connections, waiting for pending writes (called once, when the server stops).
    async fn close(&self);
}

/// PAM projects and their members. A deleted project keeps its sessions' history in the
/// database but is gone from every answer, and its name is free again.
#[async_trait]
pub(crate) trait ProjectStore: Send + Sync + 'static {
    /// Creates a project. `Conflict` if the name is taken.
    async fn create_project(
        &self,
        name: &str,
        now: SystemTime,
    ) -> Result<ProjectRecord, StoreError>;

    /// All projects, by name.
    async fn projects(&self) -> Result<Vec<ProjectRecord>, StoreError>;

    /// The project named `name`.
    async fn project(&self, name: &str) -> Result<ProjectRecord, StoreError>;

    /// Deletes a project with its memberships. `Conflict` while it still has resources.
    async fn delete_project(&self, id: &str, now: SystemTime) -> Result<(), StoreError>;

    /// The project's members, by user name.
    async fn members(&self, project_id: &str) -> Result<Vec<MemberRecord>, StoreError>;

    /// The user's role in the project, if they are a member.
    async fn role_of(
        &self,
        project_id: &str,
        user_id: &str,
    ) -> Result<Option<ProjectRole>, StoreError>;

    /// The projects the user is a member of, with their role, by project name.
    async fn memberships(
        &self,
        user_id: &str,
    ) -> Result<Vec<(ProjectRecord, ProjectRole)>, StoreError>;

    /// Makes the user a member with `role`, or changes their role. Returns the role they had.
    async fn set_member(
        &self,
        project_id: &str,
        user_id: &str,
        role: ProjectRole,
        now: SystemTime,
    ) -> Result<Option<ProjectRole>, StoreError>;

    /// Removes the user from the project together with their grants there, atomically.
    /// `NotFound` if they were not a member.
    async fn remove_member(&self, project_id: &str, user_id: &str) -> Result<(), StoreError>;
}

/// Users and their API tokens. A deleted user is gone from every answer (their sessions'
/// history keeps their name) and their name is free again.
#[async_trait]
pub(crate) trait UserStore: Send + Sync + 'static {
    /// Creates a user. `Conflict` if the name is taken, regardless of case.
    async fn create_user(&self, new: NewUser) -> Result<UserRecord, StoreError>;

    /// All users, by name.
    async fn users(&self) -> Result<Vec<UserRecord>, StoreError>;

    /// The user named `name`, regardless of case.
    async fn user_by_name(&self, name: &str) -> Result<UserRecord, StoreError>;

    /// The user holding the token with this hash (disabled or not).
    async fn user_by_token(&self, token: &TokenHash) -> Result<UserRecord, StoreError>;

    /// Disables the user (`Some(when)`) or enables them again (`None`).
    async fn set_user_disabled(
        &self,
        id: &str,
        disabled: Option<SystemTime>,
    ) -> Result<UserRecord, StoreError>;

    /// Replaces the user's token hash: the old token stops working at once.
    async fn rotate_user_token(&self, id: &str, token: &TokenHash) -> Result<(), StoreError>;

    /// Deletes the user with their grants and memberships; their token stops working.
    async fn delete_user(&self, id: &str, now: SystemTime) -> Result<(), StoreError>;
}

/// Gateways, their enrollment tokens and heartbeats.
#[async_trait]
pub(crate) trait GatewayStore: Send + Sync + 'static {
    /// Creates a pending gateway with its enrollment token. `Conflict` if the name is taken.
    async fn create_gateway(&self, new: NewGateway) -> Result<GatewayRecord, StoreError>;

    /// All gateways, by name.
    async fn gateways(&self) -> Result<Vec<GatewayRecord>, StoreError>;

    /// The gateway named `name`.
    async fn gateway_by_name(&self, name: &str) -> Result<GatewayRecord, StoreError>;

    /// The gateway with id `id`.
    async fn gateway_by_id(&self, id: &str) -> Result<GatewayRecord, StoreError>;

    /// The enrolled gateway holding the gateway token with this hash.
    async fn gateway_by_token(&self, token: &TokenHash) -> Result<GatewayRecord, StoreError>;

    /// The gateway `name` if `enrollment` is one of its unspent enrollment tokens still valid at
    /// `now`; `NotFound` otherwise (whatever the reason, so a caller learns nothing).
    async fn check_enrollment(
        &self,
        name: &str,
        enrollment: &TokenHash,
        now: SystemTime,
    ) -> Result<GatewayRecord, StoreError>;

    /// Spends the enrollment token and stores the gateway token and address, atomically.
    /// `Conflict` if the token was spent (or expired) since [`Self::check_enrollment`].
    async fn complete_enrollment(
        &self,
        enrollment: Enrollment,
    ) -> Result<GatewayRecord, StoreError>;

    /// Records a heartbeat and the gateway's current address.
    async fn record_heartbeat(
        &self,
        gateway_id: &str,
        address: &str,
        now: SystemTime,
    ) -> Result<(), StoreError>;

    /// Revokes the gateway: its token stops working and its unspent enrollment tokens are
    /// spent. It stays revoked until it enrolls again with a new enrollment token.
    async fn revoke_gateway(&self, id: &str, now: SystemTime) -> Result<GatewayRecord, StoreError>;

    /// Adds a one-time enrollment token to an existing gateway (after a revocation).
    async fn renew_enrollment(
        &self,
        gateway_id: &str,
        enrollment: &TokenHash,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> Result<(), StoreError>;
}

/// PAM resources.
#[async_trait]
pub(crate) trait ResourceStore: Send + Sync + 'static {
    /// Creates a resource. `Conflict` if the name is taken in the project.
    async fn create_resource(&self, new: NewResource) -> Result<ResourceRecord, StoreError>;

    /// The project's resources, by name.
    async fn resources(&self, project_id: &str) -> Result<Vec<ResourceRecord>, StoreError>;

    /// The resource `name` of the project.
    async fn resource(&self, project_id: &str, name: &str) -> Result<ResourceRecord, StoreError>;

    /// The resource with id `id`.
    async fn resource_by_id(&self, id: &str) -> Result<ResourceRecord, StoreError>;

    /// Deletes a resource with its accounts and grants; sessions stay as history.
    async fn delete_resource(&self, project_id: &str, name: &str) -> Result<(), StoreError>;
}

/// PAM accounts and their sealed service-account tokens.
#[async_trait]
pub(crate) trait AccountStore: Send + Sync + 'static {
    /// Creates an account, sealing its token. `Conflict` if the name is taken on the resource.
    async fn create_account(&self, new: NewAccount) -> Result<AccountRecord, StoreError>;

    /// Replaces an account's description and longest session, and its token when the change
    /// holds one (sealed like at creation). `NotFound` if the account is gone.
    async fn update_account(&self, change: AccountChange) -> Result<AccountRecord, StoreError>;

    /// The project's accounts, by resource and name; only `resource`'s when given.
    async fn accounts(
        &self,
        project_id: &str,
        resource: Option<&str>,
    ) -> Result<Vec<AccountRecord>, StoreError>;

    /// The account `resource/name` of the project.
    async fn account(
        &self,
        project_id: &str,
        resource: &str,
        name: &str,
    ) -> Result<AccountRecord, StoreError>;

    /// The account with id `id`.
    async fn account_by_id(&self, id: &str) -> Result<AccountRecord, StoreError>;

    /// The account's service-account token, unsealed. Call only to answer the bound gateway.
    async fn account_token(&self, account: &AccountRecord) -> Result<Secret, StoreError>;

    /// Deletes an account and its grants; sessions stay as history.
    async fn delete_account(
        &self,
        project_id: &str,
        resource: &str,
        name: &str,
    ) -> Result<(), StoreError>;
}

/// Grants of accounts to users.
#[async_trait]
pub(crate) trait GrantStore: Send + Sync + 'static {
    /// Creates a grant. `Conflict` if the user already holds one for the account.
    async fn create_grant(&self, new: NewGrant) -> Result<GrantRecord, StoreError>;

    /// The project's grants; only `user_id`'s when given.
    async fn grants(
        &self,
        project_id: &str,
        user_id: Option<&str>,
    ) -> Result<Vec<GrantRecord>, StoreError>;

    /// The grant `id` of the project.
    async fn grant(&self, project_id: &str, id: &str) -> Result<GrantRecord, StoreError>;

    /// The grant of `account_id` to `user_id`, if any.
    async fn grant_for(
        &self,
        account_id: &str,
        user_id: &str,
    ) -> Result<Option<GrantRecord>, StoreError>;

    /// Deletes a grant.
    async fn delete_grant(&self, project_id: &str, id: &str) -> Result<(), StoreError>;
}

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

    /// Marks every active session whose expiry is at or before `now` as expired. Returns the
    /// last sequence number written, if any session changed.
    async fn expire_sessions(&self, now: SystemTime) -> Result<Option<u64>, StoreError>;

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
}

/// What makes sessions' records hold against whoever can write the database: the gateways'
/// audit keys, KMS's signed heads of ended sessions, and each resource's recording policy
/// (docs/session-tracking.md).
#[async_trait]
pub(crate) trait AuditStore: Send + Sync + 'static {
    /// Sets the gateway's audit key (base64 Ed25519 public key) and KMS's endorsement of it
    /// (base64 signature, [`crate::audit::evidence::signing::key_endorsement_message`]), replacing any
    /// earlier one (a new enrollment brings a new key).
    async fn set_gateway_audit_key(
        &self,
        gateway_id: &str,
        public_key: &str,
        endorsement: &str,
        now: SystemTime,
    ) -> Result<(), StoreError>;

    /// Registers the gateway's audit key and KMS's endorsement only if it has none yet.
    /// Returns whether it was stored.
    async fn add_gateway_audit_key(
        &self,
        gateway_id: &str,
        public_key: &str,
        endorsement: &str,
        now: SystemTime,
    ) -> Result<bool, StoreError>;

    /// The gateway's audit key and KMS's endorsement of it (`None` for a key stored before
    /// endorsements, or by someone else than KMS), if it registered one.
    async fn gateway_audit_key(
        &self,
        gateway_id: &str,
    ) -> Result<Option<(String, Option<String>)>, StoreError>;

    /// Every gateway's audit key, by gateway id.
    async fn gateway_audit_keys(&self) -> Result<Vec<(String, String)>, StoreError>;

    /// The audit keys without an endorsement, by gateway id (the upgrade endorses them once).
    async fn unendorsed_gateway_audit_keys(&self) -> Result<Vec<(String, String)>, StoreError>;

    /// Stores KMS's endorsement of the gateway's key if that is still its key and it has none.
    /// Returns whether it was stored.
    async fn endorse_gateway_audit_key(
        &self,
        gateway_id: &str,
        public_key: &str,
        endorsement: &str,
    ) -> Result<bool, StoreError>;

    /// Stores KMS's signed head of a session, replacing an earlier one.
    async fn save_session_head(&self, head: &HeadRecord) -> Result<(), StoreError>;

    /// The last stored event of a session, if any.
    async fn last_event(&self, session: &SessionId) -> Result<Option<EventRecord>, StoreError>;

    /// KMS's signed head of a session, if it has one.
    async fn session_head(&self, session: &SessionId) -> Result<Option<HeadRecord>, StoreError>;

    /// A resource's recording policy (JSON of [`crate::audit::recording::RecordingPolicy`]),
    /// if one was set.
    async fn recording_policy(
        &self,
        resource_id: &str,
    ) -> Result<Option<RecordingPolicyRecord>, StoreError>;

    /// Sets a resource's recording policy.
    async fn set_recording_policy(
        &self,
        resource_id: &str,
        policy: &RecordingPolicyRecord,
    ) -> Result<(), StoreError>;
}
