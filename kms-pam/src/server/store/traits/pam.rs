//! A project's PAM entities: resources, their accounts, and grants.

use std::time::SystemTime;

use async_trait::async_trait;

use super::super::error::StoreError;
use super::super::records::{
    AccountChange, AccountRecord, GrantRecord, NewAccount, NewGrant, NewResource, ResourceChange,
    ResourceRecord,
};
use crate::secret::Secret;

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

    /// Replaces a resource's URL, gateway and TLS settings; its accounts, grants and sessions
    /// stay. `NotFound` if the resource is gone.
    async fn update_resource(&self, change: ResourceChange) -> Result<ResourceRecord, StoreError>;

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
    /// Creates a grant. `Conflict` if the user already holds an active one for the account; an
    /// expired or revoked one is replaced (removed from the list).
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

    /// Revokes the grant `id` of the project at `now`, by `by` for `reason`; it stays listed as
    /// revoked. `Conflict` if it already is.
    async fn revoke_grant(
        &self,
        project_id: &str,
        id: &str,
        by: &str,
        reason: &str,
        now: SystemTime,
    ) -> Result<GrantRecord, StoreError>;

    /// The grants, of every project, expired (at `now`) or revoked that active sessions were
    /// opened under.
    async fn lapsed_grants(&self, now: SystemTime) -> Result<Vec<GrantRecord>, StoreError>;
}
