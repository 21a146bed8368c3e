//! The CLI's single sign-on credentials: the hashes of their access and refresh tokens, and the
//! provider's refresh token sealed with the row's id as associated data (never handed out).

use std::time::SystemTime;

use async_trait::async_trait;

use super::{db_error, found, new_id, secs, EngineStore};
use crate::server::store::{
    NewSsoCredential, SsoCredentialRecord, SsoCredentialStore, StoreError, TokenHash, UserRecord,
};

const CREDENTIALS: &str = "SELECT id, user_id, provider_id, issuer, subject, provider_refresh, revoked_at IS NOT NULL AS revoked FROM sso_credentials";

fn credential_aad(id: &str) -> Vec<u8> {
    format!("sso_credentials:{id}").into_bytes()
}

#[derive(sqlx::FromRow)]
struct CredentialRow {
    id: String,
    user_id: String,
    provider_id: String,
    issuer: String,
    subject: String,
    provider_refresh: Option<Vec<u8>>,
    revoked: bool,
}

impl EngineStore {
    fn credential_from(&self, row: CredentialRow) -> Result<SsoCredentialRecord, StoreError> {
        let provider_refresh = row
            .provider_refresh
            .map(|sealed| self.key().open_secret(&credential_aad(&row.id), &sealed))
            .transpose()?;
        Ok(SsoCredentialRecord {
            id: row.id,
            user_id: row.user_id,
            provider_id: row.provider_id,
            issuer: row.issuer,
            subject: row.subject,
            provider_refresh,
            revoked: row.revoked,
        })
    }
}

#[async_trait]
impl SsoCredentialStore for EngineStore {
    async fn create_sso_credential(&self, new: NewSsoCredential) -> Result<String, StoreError> {
        let id = new_id();
        let sealed = new
            .provider_refresh
            .as_ref()
            .map(|token| self.key().seal_secret(&credential_aad(&id), token))
            .transpose()?;
        sqlx::query(
            "INSERT INTO sso_credentials (id, user_id, provider_id, issuer, subject, access_hash, \
             access_expires_at, refresh_hash, provider_refresh, created_at, refreshed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
        )
        .bind(&id)
        .bind(&new.user_id)
        .bind(&new.provider_id)
        .bind(&new.issuer)
        .bind(&new.subject)
        .bind(new.access.as_str())
        .bind(secs(new.access_expires_at))
        .bind(new.refresh.as_str())
        .bind(sealed)
        .bind(secs(new.now))
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(id)
    }

    async fn sso_access(
        &self,
        access: &TokenHash,
        now: SystemTime,
    ) -> Result<(UserRecord, SsoCredentialRecord), StoreError> {
        let row: Option<CredentialRow> = sqlx::query_as(&format!(
            "{CREDENTIALS} WHERE access_hash = $1 AND revoked_at IS NULL AND access_expires_at > $2"
        ))
        .bind(access.as_str())
        .bind(secs(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        let credential = self.credential_from(found(row, || "single sign-on token".to_owned())?)?;
        let user = self.user_by_id(&credential.user_id).await?;
        Ok((user, credential))
    }

    async fn sso_refresh(&self, refresh: &TokenHash) -> Result<SsoCredentialRecord, StoreError> {
        let row: Option<CredentialRow> =
            sqlx::query_as(&format!("{CREDENTIALS} WHERE refresh_hash = $1"))
                .bind(refresh.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(db_error)?;
        self.credential_from(found(row, || "single sign-on refresh token".to_owned())?)
    }

    async fn swap_sso_refresh(
        &self,
        id: &str,
        from: &TokenHash,
        to: &TokenHash,
    ) -> Result<bool, StoreError> {
        let updated = sqlx::query(
            "UPDATE sso_credentials SET refresh_hash = $1 \
             WHERE id = $2 AND refresh_hash = $3 AND revoked_at IS NULL",
        )
        .bind(to.as_str())
        .bind(id)
        .bind(from.as_str())
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(updated.rows_affected() == 1)
    }

    async fn renew_sso_credential(
        &self,
        id: &str,
        old_refresh: &TokenHash,
        renewed: &NewSsoCredential,
    ) -> Result<(), StoreError> {
        let sealed = renewed
            .provider_refresh
            .as_ref()
            .map(|token| self.key().seal_secret(&credential_aad(id), token))
            .transpose()?;
        let updated = sqlx::query(
            "UPDATE sso_credentials SET access_hash = $1, access_expires_at = $2, \
             refresh_hash = $3, provider_refresh = COALESCE($4, provider_refresh), \
             refreshed_at = $5 WHERE id = $6 AND refresh_hash = $7 AND revoked_at IS NULL",
        )
        .bind(renewed.access.as_str())
        .bind(secs(renewed.access_expires_at))
        .bind(renewed.refresh.as_str())
        .bind(sealed)
        .bind(secs(renewed.now))
        .bind(id)
        .bind(old_refresh.as_str())
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::Conflict(
                "this refresh token was already used or revoked".to_owned(),
            ));
        }
        Ok(())
    }

    async fn revoke_sso_credential(&self, id: &str, now: SystemTime) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE sso_credentials SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(secs(now))
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }
}
