//! Users and their API token hashes. Names are unique regardless of case (an index on
//! `lower(name)`); deleted users stay as rows for their sessions' history, renamed and with a
//! token hash no token has.

use std::time::SystemTime;

use async_trait::async_trait;

use super::{db_error, found, new_id, secs, time, unique_error, EngineDb, EngineStore};
use crate::server::store::{NewUser, StoreError, TokenHash, UserRecord, UserStore};

const LIVE: &str = "SELECT id, name, admin, disabled_at IS NOT NULL AS disabled, created_at \
                    FROM users WHERE deleted_at IS NULL";

#[derive(sqlx::FromRow)]
struct UserRow {
    id: String,
    name: String,
    admin: bool,
    disabled: bool,
    created_at: i64,
}

impl From<UserRow> for UserRecord {
    fn from(row: UserRow) -> Self {
        Self {
            id: row.id,
            name: row.name,
            admin: row.admin,
            disabled: row.disabled,
            created_at: time(row.created_at),
        }
    }
}

impl EngineStore {
    pub(super) async fn user_by_id(&self, id: &str) -> Result<UserRecord, StoreError> {
        let row: Option<UserRow> = sqlx::query_as(&format!("{LIVE} AND id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        found(row, || format!("user {id}")).map(UserRecord::from)
    }
}

#[async_trait]
impl UserStore for EngineStore {
    async fn create_user(&self, new: NewUser) -> Result<UserRecord, StoreError> {
        let id = new_id();
        sqlx::query(
            "INSERT INTO users (id, name, admin, token_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&id)
        .bind(&new.name)
        .bind(new.admin)
        .bind(new.token.as_str())
        .bind(secs(new.now))
        .execute(&self.pool)
        .await
        .map_err(|e| {
            unique_error(e, || {
                format!(
                    "user {} already exists (user names are unique regardless of case)",
                    new.name
                )
            })
        })?;
        Ok(UserRecord {
            id,
            name: new.name,
            admin: new.admin,
            disabled: false,
            created_at: time(secs(new.now)),
        })
    }

    async fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        let rows: Vec<UserRow> = sqlx::query_as(&format!("{LIVE} ORDER BY name"))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(rows.into_iter().map(UserRecord::from).collect())
    }

    async fn user_by_name(&self, name: &str) -> Result<UserRecord, StoreError> {
        let row: Option<UserRow> = sqlx::query_as(&format!("{LIVE} AND lower(name) = lower($1)"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        found(row, || format!("user {name}")).map(UserRecord::from)
    }

    async fn user_by_token(&self, token: &TokenHash) -> Result<UserRecord, StoreError> {
        let row: Option<UserRow> = sqlx::query_as(&format!("{LIVE} AND token_hash = $1"))
            .bind(token.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        found(row, || "user token".to_owned()).map(UserRecord::from)
    }

    async fn set_user_disabled(
        &self,
        id: &str,
        disabled: Option<SystemTime>,
    ) -> Result<UserRecord, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let updated =
            sqlx::query("UPDATE users SET disabled_at = $1 WHERE id = $2 AND deleted_at IS NULL")
                .bind(disabled.map(secs))
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("user {id}")));
        }
        // Disabling ends every console session of the user for good: enabling the user again
        // must not bring an old cookie back to life.
        if disabled.is_some() {
            end_console_sessions(&mut tx, id).await?;
        }
        tx.commit().await.map_err(db_error)?;
        self.user_by_id(id).await
    }

    async fn rotate_user_token(&self, id: &str, token: &TokenHash) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let updated =
            sqlx::query("UPDATE users SET token_hash = $1 WHERE id = $2 AND deleted_at IS NULL")
                .bind(token.as_str())
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("user {id}")));
        }
        // A rotation is what an admin does when a credential may be in someone else's hands:
        // the console sessions signed in with the old token go with it.
        end_console_sessions(&mut tx, id).await?;
        tx.commit().await.map_err(db_error)
    }

    async fn delete_user(&self, id: &str, now: SystemTime) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        // `~` is never in a name, and no token hashes to `deleted:…` (hashes are hex).
        let deleted = sqlx::query(
            "UPDATE users SET deleted_at = $1, name = name || '~' || id, \
             token_hash = 'deleted:' || id WHERE id = $2 AND deleted_at IS NULL",
        )
        .bind(secs(now))
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if deleted.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("user {id}")));
        }
        for table in [
            "grants",
            "project_members",
            "console_sessions",
            "sso_credentials",
            "user_identities",
        ] {
            sqlx::query(&format!("DELETE FROM {table} WHERE user_id = $1"))
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)
    }
}

/// Deletes every console session of user `id` (its cookies stop working at once) and its unspent
/// sign-in links (one asked for with the old credential must not open a new session after).
async fn end_console_sessions(
    tx: &mut sqlx::Transaction<'_, EngineDb>,
    id: &str,
) -> Result<(), StoreError> {
    for statement in [
        "DELETE FROM console_sessions WHERE user_id = $1",
        "DELETE FROM console_links WHERE user_id = $1 AND used_at IS NULL",
    ] {
        sqlx::query(statement)
            .bind(id)
            .execute(&mut **tx)
            .await
            .map_err(db_error)?;
    }
    Ok(())
}
