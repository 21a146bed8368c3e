//! The embedded SQLite store: one database file (WAL mode, foreign keys on), versioned migrations
//! applied on open, secrets sealed under a root key kept in a separate file.
//!
//! Write transactions begin with their write statement, so SQLite takes the write lock at once
//! and concurrent writers wait (busy timeout) instead of failing on a lock upgrade.

mod accounts;
mod audit;
mod console;
mod events;
mod gateways;
mod grants;
mod projects;
mod resources;
mod sessions;
mod setup;
mod users;

use std::io;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

use super::crypto::RootKey;
use super::StoreError;

/// The migrations compiled into the binary (`src/store/sqlite/migrations`).
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("src/server/store/sqlite/migrations");

/// How long a statement waits for another connection's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The SQLite implementation of [`Store`](super::Store).
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    root_key: Arc<RootKey>,
}

impl SqliteStore {
    /// Opens (creating if needed, mode 0600) the database file at `path`; see
    /// [`Self::open_url`].
    pub async fn open_path(path: &Path, key_file: &Path) -> Result<Self, StoreError> {
        Self::open_with(SqliteConnectOptions::new().filename(path), key_file).await
    }

    /// Opens (creating if needed, mode 0600) the database at `url` (`sqlite://PATH`), applies
    /// pending migrations, and loads the root key from `key_file`, creating it on first use.
    ///
    /// Refuses to open when the key file is readable by group or others, or when it is missing
    /// while the database already holds sealed values (a new key could not open them).
    pub async fn open_url(url: &str, key_file: &Path) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Invalid(format!("database URL: {e}")))?;
        Self::open_with(options, key_file).await
    }

    async fn open_with(options: SqliteConnectOptions, key_file: &Path) -> Result<Self, StoreError> {
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        precreate_private(options.get_filename())?;
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
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
                     restore the key file",
                    key_file.display()
                )))
            }
            None => RootKey::create(key_file)?,
        };
        Ok(Self::with_pool(pool, root_key))
    }

    /// Wraps an already migrated pool and a key (tests, embedding).
    pub fn with_pool(pool: SqlitePool, root_key: RootKey) -> Self {
        Self {
            pool,
            root_key: Arc::new(root_key),
        }
    }

    fn key(&self) -> &RootKey {
        &self.root_key
    }
}

/// Creates the database file with mode 0600 before SQLite does, since SQLite would use the
/// umask and copies the main file's mode to its `-wal` and `-shm` files.
fn precreate_private(path: &Path) -> Result<(), StoreError> {
    let name = path.to_string_lossy();
    if name.is_empty() || name.starts_with(":memory:") || name.starts_with("file:") {
        return Ok(());
    }
    match crate::fsutil::create_new_private(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Unavailable(format!("{}: {e}", path.display()))),
    }
}

async fn has_sealed_values(pool: &SqlitePool) -> Result<bool, StoreError> {
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

#[cfg(test)]
pub(crate) mod tests;
