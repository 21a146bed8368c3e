//! The PostgreSQL store: the same schema as the SQLite store (migrations mirrored one-to-one by
//! number in `postgres/migrations`), shared by any number of `kms-pam server` replicas.
//!
//! What replicas need from it: the session change log is appended under a transaction-scoped
//! advisory lock, so sequence numbers become visible in order (a poll reading `seq > after` never
//! skips a number that commits later), and each append sends a `NOTIFY` on
//! [`CHANGES_CHANNEL`] so every replica wakes its waiting polls; ending a session is a conditional
//! `UPDATE … WHERE status = 'active'`, so concurrent reapers end it once; appending a session's
//! audit events takes a transaction-scoped advisory lock per session, so two replicas handling
//! uploads of one session append one after the other, each linking to what the other stored.

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
mod notify;
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

#[cfg(test)]
pub(crate) mod test_cluster;
#[cfg(test)]
mod tests;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};

use super::crypto::RootKey;
use super::sql::{
    db_error, duration_from_db, duration_to_db, found, new_id, opt_time, secs, time, unique_error,
};
use super::StoreError;
use crate::session::SessionId;

/// The store the engine-neutral modules in `../portable` are compiled for here.
type EngineStore = PostgresStore;
/// The sqlx database of this engine, for the portable modules' query builders.
type EngineDb = sqlx::Postgres;

/// Key of the advisory lock serialising appends to the session change log.
const CHANGE_LOG_LOCK: i64 = 0x6b6d_735f_7061_6d01;

/// Before a change-log append. Identity values are handed out before commit, so two concurrent
/// appenders could commit 8 before 7 and a poll that read 8 would never see 7: the
/// transaction-scoped advisory lock makes appends commit in sequence order.
async fn serialise_change_log(tx: &mut sqlx::Transaction<'_, EngineDb>) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(CHANGE_LOG_LOCK)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// After a change-log append: a `NOTIFY`, delivered at commit to every replica.
async fn announce_change(
    tx: &mut sqlx::Transaction<'_, EngineDb>,
    seq: u64,
) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANGES_CHANNEL)
        .bind(seq.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// The change feed across replicas: `LISTEN` on [`CHANGES_CHANNEL`].
async fn change_notifications(
    pool: &PgPool,
) -> Result<Option<tokio::sync::mpsc::Receiver<u64>>, StoreError> {
    notify::listen(pool).await.map(Some)
}

/// The migrations compiled into the binary (`src/server/store/postgres/migrations`).
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("src/server/store/postgres/migrations");

/// The `NOTIFY` channel announcing a new session change (payload: its sequence number).
pub(crate) const CHANGES_CHANNEL: &str = "kms_pam_session_changes";

/// How long a pool waits for a free connection before the store reports itself unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// The PostgreSQL implementation of [`Store`](super::Store).
#[derive(Clone, Debug)]
pub(crate) struct PostgresStore {
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
    pub(crate) async fn open_url(
        url: &str,
        key_file: &std::path::Path,
    ) -> Result<Self, StoreError> {
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
    pub(crate) fn with_pool(pool: PgPool, root_key: RootKey) -> Self {
        Self {
            pool,
            root_key: Arc::new(root_key),
        }
    }

    /// Applies pending migrations to `pool` (tests, `migrate-store`).
    pub(crate) async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
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
              + (SELECT COUNT(*) FROM sso_providers) \
              + (SELECT COUNT(*) FROM kms_settings WHERE name = $1)",
    )
    .bind(setup::CA_KEY_SETTING)
    .fetch_one(pool)
    .await
    .map_err(db_error)?;
    Ok(count > 0)
}

/// First key of the advisory locks serialising appends to one session's events (the second is
/// [`event_lock_key`]); the two-key lock space does not overlap the change log's one-key lock.
pub(crate) const EVENT_APPEND_LOCK: i32 = 0x6b6d_7301;

/// The second advisory lock key of `session`'s event appends: the first 32 bits of the SHA-256
/// of its id. Two sessions sharing a key only wait for each other's appends.
pub(crate) fn event_lock_key(session: &SessionId) -> i32 {
    let digest = ring::digest::digest(&ring::digest::SHA256, session.as_str().as_bytes());
    match *digest.as_ref() {
        [a, b, c, d, ..] => i32::from_be_bytes([a, b, c, d]),
        _ => 0,
    }
}

/// Begins an event append (`../portable/events.rs`) holding the advisory lock of each of
/// `sessions` until it commits or rolls back. Locks are taken in key order, so two appends
/// covering the same sessions cannot deadlock. Under read committed, every statement after the
/// locks sees what the previous holder committed.
async fn begin_event_append(
    pool: &PgPool,
    sessions: &[&SessionId],
) -> Result<Transaction<'static, Postgres>, StoreError> {
    let mut keys: Vec<i32> = sessions.iter().map(|s| event_lock_key(s)).collect();
    keys.sort_unstable();
    keys.dedup();
    let mut tx = pool.begin().await.map_err(db_error)?;
    for key in keys {
        sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
            .bind(EVENT_APPEND_LOCK)
            .bind(key)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
    }
    Ok(tx)
}

/// Begins storing a new session (`../portable/sessions.rs`) holding a share lock on each row it
/// stands on: its user, their membership in the project, the account, the grant and the gateway.
/// Under read committed, the conditional insert that follows sees every revocation committed
/// before it; the locks keep the rest (disabling or deleting the user or rotating their token,
/// changing or removing the membership, deleting the account or the grant, revoking the
/// gateway) from committing until the session has, so the revocation's own `end_sessions` sees
/// it. Rows are locked in the order
/// the revocations that take several of them write them (a user before their memberships before
/// their grants; an account before its grants), so no two can wait for each other.
async fn begin_session_create(
    pool: &PgPool,
    new: &super::NewSessionRecord,
) -> Result<Transaction<'static, Postgres>, StoreError> {
    let mut tx = pool.begin().await.map_err(db_error)?;
    let member = "SELECT 1 FROM project_members WHERE user_id = $1 AND project_id = $2 FOR SHARE";
    let locks = [
        (
            "SELECT 1 FROM users WHERE id = $1 FOR SHARE",
            Some(&new.user.id),
            None,
        ),
        (member, Some(&new.user.id), Some(&new.project_id)),
        (
            "SELECT 1 FROM accounts WHERE id = $1 FOR SHARE",
            Some(&new.account.id),
            None,
        ),
        (
            "SELECT 1 FROM grants WHERE id = $1 FOR SHARE",
            new.grant_id.as_ref(),
            None,
        ),
        (
            "SELECT 1 FROM gateways WHERE id = $1 FOR SHARE",
            Some(&new.gateway.id),
            None,
        ),
    ];
    for (sql, first, second) in locks {
        let Some(first) = first else { continue };
        let mut query = sqlx::query(sql).bind(first);
        if let Some(second) = second {
            query = query.bind(second);
        }
        query.execute(&mut *tx).await.map_err(db_error)?;
    }
    Ok(tx)
}
