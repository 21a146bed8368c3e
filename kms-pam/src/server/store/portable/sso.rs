//! Single sign-on's rows: providers (client secret sealed), identities, sign-ins in flight
//! (sealed, spent by deleting the row); the CLI's credentials are `sso_credentials.rs`'s.

use std::time::SystemTime;

use async_trait::async_trait;

use super::{db_error, found, new_id, secs, time, unique_error, EngineStore};
use crate::kms::api::PersonIdentity;
use crate::secret::Secret;
use crate::server::store::{
    IdentityRecord, NewSsoProvider, PendingKind, ProviderSettings, SsoProviderRecord, SsoStore,
    StoreError, TokenHash, UserRecord,
};

const PROVIDERS: &str =
    "SELECT id, name, issuer, client_id, client_secret, settings, created_at FROM sso_providers";

fn provider_aad(id: &str) -> Vec<u8> {
    format!("sso_providers:{id}").into_bytes()
}

fn pending_aad(key: &TokenHash) -> Vec<u8> {
    format!("sso_pending:{}", key.as_str()).into_bytes()
}

#[derive(sqlx::FromRow)]
struct ProviderRow {
    id: String,
    name: String,
    issuer: String,
    client_id: String,
    client_secret: Vec<u8>,
    settings: String,
    created_at: i64,
}

#[derive(sqlx::FromRow)]
struct IdentityRow {
    user_id: String,
    issuer: String,
    subject: String,
    email: Option<String>,
    display_name: Option<String>,
    groups: String,
    last_seen_at: i64,
}

impl EngineStore {
    fn provider_from(&self, row: ProviderRow) -> Result<SsoProviderRecord, StoreError> {
        let settings: ProviderSettings = serde_json::from_str(&row.settings)
            .map_err(|e| StoreError::Corrupt(format!("provider {} settings: {e}", row.name)))?;
        Ok(SsoProviderRecord {
            client_secret: self
                .key()
                .open_secret(&provider_aad(&row.id), &row.client_secret)?,
            id: row.id,
            name: row.name,
            issuer: row.issuer,
            client_id: row.client_id,
            settings,
            created_at: time(row.created_at),
        })
    }

    async fn one_provider(
        &self,
        clause: &str,
        value: &str,
    ) -> Result<SsoProviderRecord, StoreError> {
        let row: Option<ProviderRow> = sqlx::query_as(&format!("{PROVIDERS} WHERE {clause} = $1"))
            .bind(value)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        self.provider_from(found(row, || format!("single sign-on provider {value}"))?)
    }
}

fn identity_from(row: IdentityRow) -> Result<IdentityRecord, StoreError> {
    let groups = serde_json::from_str(&row.groups)
        .map_err(|e| StoreError::Corrupt(format!("identity groups: {e}")))?;
    Ok(IdentityRecord {
        user_id: row.user_id,
        identity: PersonIdentity {
            issuer: row.issuer,
            subject: row.subject,
            email: row.email,
            name: row.display_name,
        },
        groups,
        last_seen_at: time(row.last_seen_at),
    })
}

#[async_trait]
impl SsoStore for EngineStore {
    async fn create_sso_provider(
        &self,
        new: NewSsoProvider,
    ) -> Result<SsoProviderRecord, StoreError> {
        let id = new_id();
        let sealed = self
            .key()
            .seal_secret(&provider_aad(&id), &new.client_secret)?;
        let settings = serde_json::to_string(&new.settings)
            .map_err(|e| StoreError::Invalid(format!("provider settings: {e}")))?;
        sqlx::query(
            "INSERT INTO sso_providers (id, name, issuer, client_id, client_secret, settings, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&id)
        .bind(&new.name)
        .bind(&new.issuer)
        .bind(&new.client_id)
        .bind(sealed)
        .bind(settings)
        .bind(secs(new.now))
        .execute(&self.pool)
        .await
        .map_err(|e| unique_error(e, || format!("provider {} already exists", new.name)))?;
        Ok(SsoProviderRecord {
            id,
            name: new.name,
            issuer: new.issuer,
            client_id: new.client_id,
            client_secret: new.client_secret,
            settings: new.settings,
            created_at: time(secs(new.now)),
        })
    }

    async fn sso_providers(&self) -> Result<Vec<SsoProviderRecord>, StoreError> {
        let rows: Vec<ProviderRow> = sqlx::query_as(&format!("{PROVIDERS} ORDER BY name"))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        rows.into_iter()
            .map(|row| self.provider_from(row))
            .collect()
    }

    async fn sso_provider(&self, name: &str) -> Result<SsoProviderRecord, StoreError> {
        self.one_provider("name", name).await
    }

    async fn sso_provider_by_id(&self, id: &str) -> Result<SsoProviderRecord, StoreError> {
        self.one_provider("id", id).await
    }

    async fn delete_sso_provider(&self, name: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        sqlx::query(
            "DELETE FROM sso_credentials WHERE provider_id IN \
             (SELECT id FROM sso_providers WHERE name = $1)",
        )
        .bind(name)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        let deleted = sqlx::query("DELETE FROM sso_providers WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        if deleted.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!(
                "single sign-on provider {name}"
            )));
        }
        tx.commit().await.map_err(db_error)
    }

    async fn put_pending(
        &self,
        key: &TokenHash,
        kind: PendingKind,
        data: &Secret,
        expires_at: SystemTime,
    ) -> Result<(), StoreError> {
        let sealed = self.key().seal_secret(&pending_aad(key), data)?;
        sqlx::query(
            "INSERT INTO sso_pending (key_hash, kind, data, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(key.as_str())
        .bind(kind.as_str())
        .bind(sealed)
        .bind(secs(expires_at))
        .execute(&self.pool)
        .await
        .map_err(|e| {
            unique_error(e, || {
                "a sign-in with this key is already pending".to_owned()
            })
        })?;
        Ok(())
    }

    async fn pending(
        &self,
        key: &TokenHash,
        kind: PendingKind,
        now: SystemTime,
    ) -> Result<Option<Secret>, StoreError> {
        let row: Option<(Vec<u8>,)> = sqlx::query_as(
            "SELECT data FROM sso_pending WHERE key_hash = $1 AND kind = $2 AND expires_at > $3",
        )
        .bind(key.as_str())
        .bind(kind.as_str())
        .bind(secs(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.map(|(sealed,)| self.key().open_secret(&pending_aad(key), &sealed))
            .transpose()
    }

    async fn take_pending(
        &self,
        key: &TokenHash,
        kind: PendingKind,
        now: SystemTime,
    ) -> Result<Option<Secret>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        sqlx::query("DELETE FROM sso_pending WHERE expires_at <= $1")
            .bind(secs(now))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        let row: Option<(Vec<u8>,)> = sqlx::query_as(
            "DELETE FROM sso_pending WHERE key_hash = $1 AND kind = $2 RETURNING data",
        )
        .bind(key.as_str())
        .bind(kind.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        row.map(|(sealed,)| self.key().open_secret(&pending_aad(key), &sealed))
            .transpose()
    }

    async fn identity_user(
        &self,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<UserRecord>, StoreError> {
        let row: Option<(String,)> = sqlx::query_as(
            "SELECT i.user_id FROM user_identities i JOIN users u ON u.id = i.user_id \
             WHERE i.issuer = $1 AND i.subject = $2 AND u.deleted_at IS NULL",
        )
        .bind(issuer)
        .bind(subject)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        match row {
            Some((id,)) => Ok(Some(self.user_by_id(&id).await?)),
            None => Ok(None),
        }
    }

    async fn save_identity(&self, identity: &IdentityRecord) -> Result<(), StoreError> {
        let groups = serde_json::to_string(&identity.groups)
            .map_err(|e| StoreError::Invalid(format!("identity groups: {e}")))?;
        let person = &identity.identity;
        sqlx::query(
            "INSERT INTO user_identities (issuer, subject, user_id, email, display_name, groups, \
             last_seen_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (issuer, subject) DO UPDATE SET user_id = excluded.user_id, \
             email = excluded.email, display_name = excluded.display_name, \
             groups = excluded.groups, last_seen_at = excluded.last_seen_at",
        )
        .bind(&person.issuer)
        .bind(&person.subject)
        .bind(&identity.user_id)
        .bind(&person.email)
        .bind(&person.name)
        .bind(groups)
        .bind(secs(identity.last_seen_at))
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn identities_of(&self, user_id: &str) -> Result<Vec<IdentityRecord>, StoreError> {
        let rows: Vec<IdentityRow> = sqlx::query_as(
            "SELECT user_id, issuer, subject, email, display_name, groups, last_seen_at \
             FROM user_identities WHERE user_id = $1 ORDER BY issuer, subject",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.into_iter().map(identity_from).collect()
    }

    async fn sso_user(&self, id: &str) -> Result<UserRecord, StoreError> {
        self.user_by_id(id).await
    }

    async fn set_user_admin(&self, user_id: &str, admin: bool) -> Result<(), StoreError> {
        let updated =
            sqlx::query("UPDATE users SET admin = $1 WHERE id = $2 AND deleted_at IS NULL")
                .bind(admin)
                .bind(user_id)
                .execute(&self.pool)
                .await
                .map_err(db_error)?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("user {user_id}")));
        }
        Ok(())
    }
}
