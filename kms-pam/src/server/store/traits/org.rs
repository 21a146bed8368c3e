//! The organisation's entities: projects and their members, users, gateways.

use std::time::SystemTime;

use async_trait::async_trait;

use super::super::crypto::TokenHash;
use super::super::error::StoreError;
use super::super::records::{
    Enrollment, GatewayRecord, MemberRecord, NewGateway, NewUser, ProjectRecord, UserRecord,
};
use crate::kms::api::{GatewayReach, ProjectRole};

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

    /// Spends the enrollment token and stores the gateway token and address, atomically; the
    /// reach an earlier instance reported is forgotten (the default until the new one's first
    /// heartbeat). `Conflict` if the token was spent (or expired) since
    /// [`Self::check_enrollment`].
    async fn complete_enrollment(
        &self,
        enrollment: Enrollment,
    ) -> Result<GatewayRecord, StoreError>;

    /// Records a heartbeat with the gateway's current address and how CLIs reach it.
    async fn record_heartbeat(
        &self,
        gateway_id: &str,
        address: &str,
        reach: &GatewayReach,
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

    /// Which projects (not deleted) may use which gateway: `(gateway id, project name)`, by
    /// project name.
    async fn gateway_projects(&self) -> Result<Vec<(String, String)>, StoreError>;

    /// Whether the project may use the gateway.
    async fn gateway_serves(&self, gateway_id: &str, project_id: &str) -> Result<bool, StoreError>;

    /// Lets the project use the gateway (nothing changes if it may already).
    async fn assign_gateway(
        &self,
        gateway_id: &str,
        project_id: &str,
        now: SystemTime,
    ) -> Result<(), StoreError>;

    /// Takes the gateway away from the project (nothing changes if it was not assigned).
    async fn unassign_gateway(&self, gateway_id: &str, project_id: &str) -> Result<(), StoreError>;

    /// Replaces the gateway's allow-list of resource URL hosts (empty: no limit).
    async fn set_gateway_allow_list(
        &self,
        gateway_id: &str,
        patterns: &[String],
    ) -> Result<GatewayRecord, StoreError>;

    /// Sets the gateway's credential sealing key (base64 X25519 public key), replacing any
    /// earlier one (a new enrollment brings a new key).
    async fn set_gateway_sealing_key(
        &self,
        gateway_id: &str,
        public_key: &str,
        now: SystemTime,
    ) -> Result<(), StoreError>;

    /// Registers the gateway's sealing key only if it has none yet; returns whether it was
    /// stored.
    async fn add_gateway_sealing_key(
        &self,
        gateway_id: &str,
        public_key: &str,
        now: SystemTime,
    ) -> Result<bool, StoreError>;

    /// The gateway's sealing key, if it registered one.
    async fn gateway_sealing_key(&self, gateway_id: &str) -> Result<Option<String>, StoreError>;
}
