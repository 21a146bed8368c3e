//! The embedded SQLite store: one database file (WAL mode, foreign keys on), versioned migrations
//! applied on open, secrets sealed under a root key kept in a separate file.
//!
//! Write transactions begin with their write statement, so SQLite takes the write lock at once
//! and concurrent writers wait (busy timeout) instead of failing on a lock upgrade; an event
//! append, which must read the chain before it writes, begins `IMMEDIATE` for the same reason.

// The engine-neutral modules in ../portable are compiled into each engine on purpose.
#![allow(clippy::duplicate_mod)]

#[path = "../portable/accounts.rs"]
mod accounts;
#[path = "../portable/audit.rs"]
mod audit;
#[path = "../portable/console.rs"]
mod console;
#[path = "../portable/events.rs"]
mod events;
#[path = "../portable/gateways.rs"]
mod gateways;
#[path = "../portable/grants.rs"]
mod grants;
#[path = "../portable/projects.rs"]
mod projects;
#[path = "../portable/resources.rs"]
mod resources;
#[path = "../portable/session_rows.rs"]
mod session_rows;
#[path = "../portable/sessions.rs"]
mod sessions;
#[path = "../portable/setup.rs"]
mod setup;
#[path = "../portable/sso.rs"]
mod sso;
#[path = "../portable/sso_credentials.rs"]
mod sso_credentials;
#[path = "../portable/users.rs"]
mod users;

use std::io;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};

use super::crypto::RootKey;
use super::sql::{
    db_error, duration_from_db, duration_to_db, found, new_id, opt_time, secs, time, unique_error,
};
use super::StoreError;
use crate::session::SessionId;

/// The store the engine-neutral modules in `../portable` are compiled for here.
type EngineStore = SqliteStore;
/// The sqlx database of this engine, for the portable modules' query builders.
type EngineDb = sqlx::Sqlite;

/// Before a change-log append: nothing, SQLite has one writer at a time.
async fn serialise_change_log(_tx: &mut sqlx::Transaction<'_, EngineDb>) -> Result<(), StoreError> {
    Ok(())
}

/// After a change-log append: nothing to wake, polls of this one process re-read the log.
async fn announce_change(
    _tx: &mut sqlx::Transaction<'_, EngineDb>,
    _seq: u64,
) -> Result<(), StoreError> {
    Ok(())
}

/// No change feed across processes: one SQLite file has one KMS.
async fn change_notifications(
    _pool: &SqlitePool,
) -> Result<Option<tokio::sync::mpsc::Receiver<u64>>, StoreError> {
    Ok(None)
}

/// The migrations compiled into the binary (`src/store/sqlite/migrations`).
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("src/server/store/sqlite/migrations");

/// How long a statement waits for another connection's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The SQLite implementation of [`Store`](super::Store).
#[derive(Clone, Debug)]
pub(crate) struct SqliteStore {
    pool: SqlitePool,
    root_key: Arc<RootKey>,
}

impl SqliteStore {
    /// Opens (creating if needed, mode 0600) the database file at `path`; see
    /// [`Self::open_url`].
    pub(crate) async fn open_path(path: &Path, key_file: &Path) -> Result<Self, StoreError> {
        Self::open_with(SqliteConnectOptions::new().filename(path), key_file).await
    }

    /// Opens (creating if needed, mode 0600) the database at `url` (`sqlite://PATH`), applies
    /// pending migrations, and loads the root key from `key_file`, creating it on first use.
    ///
    /// Refuses to open when the key file is readable by group or others, or when it is missing
    /// while the database already holds sealed values (a new key could not open them).
    pub(crate) async fn open_url(url: &str, key_file: &Path) -> Result<Self, StoreError> {
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
    pub(crate) fn with_pool(pool: SqlitePool, root_key: RootKey) -> Self {
        Self {
            pool,
            root_key: Arc::new(root_key),
        }
    }

    fn key(&self) -> &RootKey {
        &self.root_key
    }
}

/// Begins an event append (`../portable/events.rs`) holding the database's write lock, which
/// also serialises appends to any one session: the append reads the session's chain before it
/// writes, and a deferred transaction would read without the lock (another writer could append
/// in between) and then fail to upgrade.
async fn begin_event_append(
    pool: &SqlitePool,
    _sessions: &[&SessionId],
) -> Result<Transaction<'static, Sqlite>, StoreError> {
    pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_error)
}

/// Begins storing a new session (`../portable/sessions.rs`) holding the database's write lock:
/// its conditional insert then reads what allows the session and writes it with no other write
/// (a revocation) in between, and a revocation that comes later sees the session and ends it.
async fn begin_session_create(
    pool: &SqlitePool,
    _new: &super::NewSessionRecord,
) -> Result<Transaction<'static, Sqlite>, StoreError> {
    pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_error)
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
              + (SELECT COUNT(*) FROM sso_providers) \
              + (SELECT COUNT(*) FROM kms_settings WHERE name = $1)",
    )
    .bind(setup::CA_KEY_SETTING)
    .fetch_one(pool)
    .await
    .map_err(db_error)?;
    Ok(count > 0)
}

#[cfg(test)]
pub(crate) mod tests;
