//! Helpers both SQL engines share: mapping database errors and converting times, durations and
//! ids to and from their columns.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::error::StoreError;

/// Maps a database error; callers turn unique violations into a `Conflict` naming the row.
pub(super) fn db_error(e: sqlx::Error) -> StoreError {
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
pub(super) fn unique_error(e: sqlx::Error, what: impl FnOnce() -> String) -> StoreError {
    match db_error(e) {
        StoreError::Conflict(_) => StoreError::Conflict(what()),
        other => other,
    }
}

/// The row, or `NotFound(what())`.
pub(super) fn found<T>(row: Option<T>, what: impl FnOnce() -> String) -> Result<T, StoreError> {
    row.ok_or_else(|| StoreError::NotFound(what()))
}

pub(super) fn secs(t: SystemTime) -> i64 {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    i64::try_from(secs).unwrap_or(i64::MAX)
}

pub(super) fn time(secs: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0))
}

pub(super) fn opt_time(secs: Option<i64>) -> Option<SystemTime> {
    secs.map(time)
}

pub(super) fn duration_to_db(secs: u64) -> Result<i64, StoreError> {
    i64::try_from(secs).map_err(|_| StoreError::Invalid(format!("duration {secs}s is too long")))
}

pub(super) fn duration_from_db(secs: i64) -> Result<u64, StoreError> {
    u64::try_from(secs).map_err(|_| StoreError::Corrupt(format!("negative duration {secs}")))
}

pub(super) fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
