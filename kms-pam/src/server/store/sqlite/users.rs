//! Users and their API token hashes.

use async_trait::async_trait;

use super::{db_error, found, new_id, secs, time, unique_error, SqliteStore};
use crate::server::store::{NewUser, StoreError, TokenHash, UserRecord, UserStore};

const COLUMNS: &str = "id, name, admin, created_at";

#[derive(sqlx::FromRow)]
struct UserRow {
    id: String,
    name: String,
    admin: bool,
    created_at: i64,
}

impl From<UserRow> for UserRecord {
    fn from(row: UserRow) -> Self {
        Self {
            id: row.id,
            name: row.name,
            admin: row.admin,
            created_at: time(row.created_at),
        }
    }
}

#[async_trait]
impl UserStore for SqliteStore {
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
        .map_err(|e| unique_error(e, || format!("user {} already exists", new.name)))?;
        Ok(UserRecord {
            id,
            name: new.name,
            admin: new.admin,
            created_at: time(secs(new.now)),
        })
    }

    async fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        let rows: Vec<UserRow> =
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM users ORDER BY name"))
                .fetch_all(&self.pool)
                .await
                .map_err(db_error)?;
        Ok(rows.into_iter().map(UserRecord::from).collect())
    }

    async fn user_by_name(&self, name: &str) -> Result<UserRecord, StoreError> {
        let row: Option<UserRow> =
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM users WHERE name = $1"))
                .bind(name)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_error)?;
        found(row, || format!("user {name}")).map(UserRecord::from)
    }

    async fn user_by_token(&self, token: &TokenHash) -> Result<UserRecord, StoreError> {
        let row: Option<UserRow> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM users WHERE token_hash = $1"
        ))
        .bind(token.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        found(row, || "user token".to_owned()).map(UserRecord::from)
    }
}
