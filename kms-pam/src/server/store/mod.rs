//! Storage of the KMS control plane: projects and their members, users, gateways, PAM resources, accounts, grants, sessions,
//! the session change log and the sessions' audit events.
//!
//! [`Store`] is the sum of small per-entity traits ([`SetupStore`], [`ProjectStore`],
//! [`UserStore`], [`GatewayStore`], [`ResourceStore`], [`AccountStore`], [`GrantStore`],
//! [`SessionStore`], [`EventStore`], [`AuditStore`]), so
//! handlers depend on one `Arc<dyn Store>` while each backend implements one entity per file.
//! [`sqlite::SqliteStore`] is the embedded default; [`postgres::PostgresStore`] serves any number
//! of replicas sharing one database. Both run the same portable SQL (TEXT UUID ids, unix seconds,
//! `$n` placeholders, a `project_id` on every PAM row), each with its own migrations mirrored
//! one-to-one by number, and the same test suite. docs/api.md ("Storage") describes the schema,
//! docs/operations.md the replicas.
//!
//! Secrets at rest ([`crypto`]): API tokens only as SHA-256 hashes; service-account tokens and the
//! CA key sealed with AES-256-GCM under a root key kept in its own file.

pub(crate) mod crypto;
mod error;
pub(crate) mod migrate;
pub(crate) mod postgres;
mod records;
mod sql;
pub(crate) mod sqlite;
#[cfg(test)]
mod suite;
mod traits;

pub(crate) use crypto::TokenHash;
pub(crate) use error::StoreError;
pub(crate) use records::{
    AccountChange, AccountRecord, ActiveSessions, ChangeRecord, EndedSessions, Enrollment,
    EventLink, EventRecord, EventSpan, GatewayRecord, GrantRecord, GrantRevocation, HeadRecord,
    IdentityRecord, MemberRecord, NewAccount, NewGateway, NewGrant, NewResource, NewSessionRecord,
    NewSsoCredential, NewSsoProvider, NewUser, PendingKind, ProjectRecord, ProviderSettings,
    RecordingPolicyRecord, ResourceChange, ResourceRecord, SessionFilter, SessionKeyRecord,
    SessionOwner, SessionPage, SessionRecord, SessionSearch, SessionUpdate, SsoCredentialRecord,
    SsoProviderRecord, UserRecord,
};
pub(crate) use traits::{
    AccountStore, AuditStore, ConsoleStore, EventStore, GatewayStore, GrantStore, LinkEvents,
    ProjectStore, ResourceStore, SessionStore, SetupStore, SsoCredentialStore, SsoStore, Store,
    StoredCa, UserStore,
};
