//! The PostgreSQL store: the same schema as the SQLite store (migrations mirrored one-to-one by
//! number in `postgres/migrations`), shared by any number of `kms-pam server` replicas.
//!
//! What replicas need from it: the session change log is appended under a transaction-scoped
//! advisory lock, so sequence numbers become visible in order (a poll reading `seq > after` never
//! skips a number that commits later), and each append sends a `NOTIFY` on
//! [`CHANGES_CHANNEL`] so every replica wakes its waiting polls; ending a session is a conditional
//! `UPDATE … WHERE status = 'active'`, so concurrent reapers end it once.

mod accounts;
mod audit;
mod console;
mod events;
mod gateways;
mod grants;
mod notify;
mod projects;
mod resources;
mod sessions;
mod setup;
mod users;

#[cfg(test)]
pub(crate) mod test_cluster;
#[cfg(test)]
mod tests;

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use super::crypto::RootKey;
use super::StoreError;

/// The migrations compiled into the binary (`src/server/store/postgres/migrations`).
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("src/server/store/postgres/migrations");

/// The `NOTIFY` channel announcing a new session change (payload: its sequence number).
pub const CHANGES_CHANNEL: &str = "kms_pam_session_changes";

/// How long a pool waits for a free connection before the store reports itself unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// The PostgreSQL implementation of [`Store`](super::Store).
#[derive(Clone, Debug)]
pub struct PostgresStore {
    pool: PgPool,
    root_key: Arc<RootKey>,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://USER@HOST:PORT/DB`), applies pending migrations (sqlx
    /// takes an advisory lock, so replicas starting together migrate once), and loads the root
    /// key from `key_file`, creating it only while the database holds nothing sealed.
    ///
    /// Every replica must be given the same key file (see docs/operations.md): a replica that
    /// created its own would fail to open the CA key the first one stored.
    pub async fn open_url(url: &str, key_file: &std::path::Path) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Invalid(format!("database URL: {e}")))?;
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(db_error)?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Unavailable(format!("database migration failed: {e}")))?;
        let root_key = match RootKey::load(key_file)? {
            Some(key) => key,
            None if has_sealed_values(&pool).await? => {
                return Err(StoreError::Invalid(format!(
                    "root key {} is missing but the database holds values sealed with it; \
                     give every replica the same key file",
                    key_file.display()
                )))
            }
            None => RootKey::create(key_file)?,
        };
        Ok(Self::with_pool(pool, root_key))
    }

    /// Wraps an already migrated pool and a key (tests, embedding).
    pub fn with_pool(pool: PgPool, root_key: RootKey) -> Self {
        Self {
            pool,
            root_key: Arc::new(root_key),
        }
    }

    /// Applies pending migrations to `pool` (tests, `migrate-store`).
    pub async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
        MIGRATOR
            .run(pool)
            .await
            .map_err(|e| StoreError::Unavailable(format!("database migration failed: {e}")))
    }

    fn key(&self) -> &RootKey {
        &self.root_key
    }
}

async fn has_sealed_values(pool: &PgPool) -> Result<bool, StoreError> {
    let (count,): (i64,) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM accounts) \
              + (SELECT COUNT(*) FROM kms_settings WHERE name = $1)",
    )
    .bind(setup::CA_KEY_SETTING)
    .fetch_one(pool)
    .await
    .map_err(db_error)?;
    Ok(count > 0)
}

/// Maps a database error; callers turn unique violations into a `Conflict` naming the row.
fn db_error(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::RowNotFound => StoreError::NotFound("row".to_owned()),
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict("already exists".to_owned())
        }
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
            StoreError::Invalid("refers to something that does not exist".to_owned())
        }
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::TypeNotFound { .. } => StoreError::Corrupt(e.to_string()),
        _ => StoreError::Unavailable(e.to_string()),
    }
}

/// [`db_error`], with a unique violation reported as `Conflict(what())`.
fn unique_error(e: sqlx::Error, what: impl FnOnce() -> String) -> StoreError {
    match db_error(e) {
        StoreError::Conflict(_) => StoreError::Conflict(what()),
        other => other,
    }
}

/// The row, or `NotFound(what())`.
fn found<T>(row: Option<T>, what: impl FnOnce() -> String) -> Result<T, StoreError> {
    row.ok_or_else(|| StoreError::NotFound(what()))
}

fn secs(t: SystemTime) -> i64 {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    i64::try_from(secs).unwrap_or(i64::MAX)
}

fn time(secs: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0))
}

fn opt_time(secs: Option<i64>) -> Option<SystemTime> {
    secs.map(time)
}

fn duration_to_db(secs: u64) -> Result<i64, StoreError> {
    i64::try_from(secs).map_err(|_| StoreError::Invalid(format!("duration {secs}s is too long")))
}

fn duration_from_db(secs: i64) -> Result<u64, StoreError> {
    u64::try_from(secs).map_err(|_| StoreError::Corrupt(format!("negative duration {secs}")))
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
