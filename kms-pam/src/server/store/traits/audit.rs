//! What makes sessions' records hold: gateway audit keys, signed heads, recording policies.

use std::time::SystemTime;

use async_trait::async_trait;

use super::super::error::StoreError;
use super::super::records::{EventRecord, HeadRecord, RecordingPolicyRecord, SessionKeyRecord};
use crate::session::SessionId;

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

    /// The gateway key KMS bound the session to when it created it, if it did.
    async fn session_key(
        &self,
        session: &SessionId,
    ) -> Result<Option<SessionKeyRecord>, StoreError>;

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
