//! The rows of the KMS store as Rust values: what a `Store` takes and returns, in a file per
//! area (the organisation, a project's PAM entities, sessions and their record).
//!
//! Ids are UUIDs in text form; times are whole seconds (the store keeps unix seconds). Records
//! carry both the ids that tie rows together and the names people use, so handlers can answer
//! without a second lookup.

mod org;
mod pam;
mod sessions;
mod sso;

pub(crate) use self::org::{
    Enrollment, GatewayRecord, MemberRecord, NewGateway, NewUser, ProjectRecord, UserRecord,
};
pub(crate) use self::pam::{
    AccountChange, AccountRecord, GrantRecord, GrantRevocation, NewAccount, NewGrant, NewResource,
    ResourceChange, ResourceRecord,
};
pub(crate) use self::sessions::{
    ActiveSessions, ChangeRecord, EndedSessions, EventLink, EventRecord, EventSpan, HeadRecord,
    NewSessionRecord, RecordingPolicyRecord, SessionFilter, SessionKeyRecord, SessionOwner,
    SessionPage, SessionRecord, SessionSearch, SessionUpdate,
};
pub(crate) use self::sso::{
    IdentityRecord, NewSsoCredential, NewSsoProvider, PendingKind, ProviderSettings,
    SsoCredentialRecord, SsoProviderRecord,
};
