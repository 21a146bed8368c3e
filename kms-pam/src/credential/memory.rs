//! An in-memory [`CredentialStore`]: resources and accounts given at start-up.

use std::collections::HashMap;
use std::sync::RwLock;

use async_trait::async_trait;

use super::{CredentialError, CredentialStore, SessionCredential, Upstream};
use crate::secret::Secret;
use crate::session::Session;

/// Resources and accounts kept in maps, e.g. loaded from a standalone gateway's config file.
#[derive(Debug, Default)]
pub struct MemoryCredentialStore {
    resources: RwLock<HashMap<String, Upstream>>,
    accounts: RwLock<HashMap<(String, String), Secret>>,
}

impl MemoryCredentialStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a resource.
    pub fn add_resource(&self, name: impl Into<String>, upstream: Upstream) -> &Self {
        write(&self.resources).insert(name.into(), upstream);
        self
    }

    /// Adds or replaces an account's token.
    pub fn add_account(
        &self,
        resource: impl Into<String>,
        account: impl Into<String>,
        token: Secret,
    ) -> &Self {
        write(&self.accounts).insert((resource.into(), account.into()), token);
        self
    }

    /// Removes an account; sessions already holding its credential keep it until they end.
    pub fn remove_account(&self, resource: &str, account: &str) {
        write(&self.accounts).remove(&(resource.to_owned(), account.to_owned()));
    }
}

// The maps are only ever replaced entry by entry, so a poisoned lock still holds consistent data.
fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

#[async_trait]
impl CredentialStore for MemoryCredentialStore {
    async fn credential(&self, session: &Session) -> Result<SessionCredential, CredentialError> {
        let not_found = || CredentialError::NotFound {
            resource: session.resource.clone(),
            account: session.account.clone(),
        };
        let upstream = read(&self.resources)
            .get(&session.resource)
            .cloned()
            .ok_or_else(not_found)?;
        let token = read(&self.accounts)
            .get(&(session.resource.clone(), session.account.clone()))
            .cloned()
            .ok_or_else(not_found)?;
        Ok(SessionCredential { upstream, token })
    }
}
