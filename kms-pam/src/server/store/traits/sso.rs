//! Single sign-on: providers, identities, sign-ins in flight and the CLI's credentials.

use std::time::SystemTime;

use async_trait::async_trait;

use super::super::crypto::TokenHash;
use super::super::error::StoreError;
use super::super::records::{
    IdentityRecord, NewSsoCredential, NewSsoProvider, PendingKind, SsoCredentialRecord,
    SsoProviderRecord, UserRecord,
};
use crate::secret::Secret;

/// What single sign-on keeps. Secrets are sealed under the root key: client secrets, the data
/// of sign-ins in flight, providers' refresh tokens; KMS's own tokens only as hashes.
#[async_trait]
pub(crate) trait SsoStore: Send + Sync + 'static {
    /// Adds a provider. `Conflict` if the name is taken.
    async fn create_sso_provider(
        &self,
        new: NewSsoProvider,
    ) -> Result<SsoProviderRecord, StoreError>;

    /// All providers, by name.
    async fn sso_providers(&self) -> Result<Vec<SsoProviderRecord>, StoreError>;

    /// The provider named `name`.
    async fn sso_provider(&self, name: &str) -> Result<SsoProviderRecord, StoreError>;

    /// The provider with id `id`.
    async fn sso_provider_by_id(&self, id: &str) -> Result<SsoProviderRecord, StoreError>;

    /// Deletes the provider and every CLI credential issued through it.
    async fn delete_sso_provider(&self, name: &str) -> Result<(), StoreError>;

    /// Keeps `data` (sealed) under the one-time key `key` until `expires_at`.
    async fn put_pending(
        &self,
        key: &TokenHash,
        kind: PendingKind,
        data: &Secret,
        expires_at: SystemTime,
    ) -> Result<(), StoreError>;

    /// The data under `key` if it is of `kind` and not expired at `now`, without spending it.
    async fn pending(
        &self,
        key: &TokenHash,
        kind: PendingKind,
        now: SystemTime,
    ) -> Result<Option<Secret>, StoreError>;

    /// Spends `key`: its data if it is of `kind` and not expired at `now`, and only for the
    /// first caller. Expired keys are deleted on the way.
    async fn take_pending(
        &self,
        key: &TokenHash,
        kind: PendingKind,
        now: SystemTime,
    ) -> Result<Option<Secret>, StoreError>;

    /// The user the identity `(issuer, subject)` belongs to, if linked (deleted users are not).
    async fn identity_user(
        &self,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<UserRecord>, StoreError>;

    /// Links (or updates) an identity.
    async fn save_identity(&self, identity: &IdentityRecord) -> Result<(), StoreError>;

    /// The identities of a user, by issuer.
    async fn identities_of(&self, user_id: &str) -> Result<Vec<IdentityRecord>, StoreError>;

    /// The live (not deleted) user with id `id`, disabled or not.
    async fn sso_user(&self, id: &str) -> Result<UserRecord, StoreError>;

    /// Makes the user an organisation administrator or not.
    async fn set_user_admin(&self, user_id: &str, admin: bool) -> Result<(), StoreError>;
}

/// The CLI's single sign-on credentials: token hashes, and the provider's refresh token sealed.
#[async_trait]
pub(crate) trait SsoCredentialStore: Send + Sync + 'static {
    /// Stores a new CLI credential; returns its id.
    async fn create_sso_credential(&self, new: NewSsoCredential) -> Result<String, StoreError>;

    /// The live credential whose access token has this hash, with its enabled user; `NotFound`
    /// when expired at `now`, revoked, or its user is disabled or deleted.
    async fn sso_access(
        &self,
        access: &TokenHash,
        now: SystemTime,
    ) -> Result<(UserRecord, SsoCredentialRecord), StoreError>;

    /// The credential whose refresh token has this hash (revoked or not).
    async fn sso_refresh(&self, refresh: &TokenHash) -> Result<SsoCredentialRecord, StoreError>;

    /// Changes a live credential's refresh-token hash from `from` to `to`; whether it did (a
    /// refresh claims the token this way before asking the provider, and gives it back when
    /// nothing was decided).
    async fn swap_sso_refresh(
        &self,
        id: &str,
        from: &TokenHash,
        to: &TokenHash,
    ) -> Result<bool, StoreError>;

    /// Replaces a credential's tokens if its refresh token is still `old_refresh` (one refresh
    /// wins); `Conflict` otherwise.
    async fn renew_sso_credential(
        &self,
        id: &str,
        old_refresh: &TokenHash,
        renewed: &NewSsoCredential,
    ) -> Result<(), StoreError>;

    /// Revokes one credential.
    async fn revoke_sso_credential(&self, id: &str, now: SystemTime) -> Result<(), StoreError>;
}
