//! Sessions as rows: the columns read, a row turned into a record, statuses and causes as
//! stored, the conditions of a bulk end, and the change log's append (`sessions.rs` uses them,
//! `console.rs` reads the same columns).

use sqlx::{QueryBuilder, Transaction};

use super::{db_error, opt_time, secs, time, EngineDb};
use crate::server::store::{ActiveSessions, SessionOwner, SessionRecord, StoreError};
use crate::session::{EndCause, Session, SessionId, SessionStatus};

pub(super) const SELECT: &str =
    "SELECT id, project_id, user_id, user_name, resource_id, resource_name, \
                      account_id, account_name, gateway_id, gateway_name, status, end_cause, \
                      reason, created_at, expires_at, ended_at, grant_id, \
                      COALESCE(last_seen_at, created_at) AS last_seen_at, client_address, user_agent, \
                      identity FROM sessions";

#[derive(sqlx::FromRow)]
pub(super) struct SessionRow {
    id: String,
    project_id: String,
    user_id: String,
    user_name: String,
    resource_id: String,
    resource_name: String,
    account_id: String,
    account_name: String,
    gateway_id: String,
    gateway_name: String,
    status: String,
    end_cause: Option<String>,
    reason: Option<String>,
    created_at: i64,
    expires_at: i64,
    ended_at: Option<i64>,
    grant_id: Option<String>,
    last_seen_at: i64,
    client_address: Option<String>,
    user_agent: Option<String>,
    identity: Option<String>,
}

impl TryFrom<SessionRow> for SessionRecord {
    type Error = StoreError;

    fn try_from(row: SessionRow) -> Result<Self, StoreError> {
        Ok(Self {
            session: Session {
                id: SessionId::new(row.id),
                user: row.user_name,
                resource: row.resource_name,
                account: row.account_name,
                gateway: row.gateway_name,
                status: parse_status(&row.status)?,
                created_at: time(row.created_at),
                expires_at: time(row.expires_at),
                ended_at: opt_time(row.ended_at),
                reason: row.reason,
                binding: None,
            },
            end_cause: row.end_cause.as_deref().map(parse_cause).transpose()?,
            project_id: row.project_id,
            user_id: row.user_id,
            resource_id: row.resource_id,
            account_id: row.account_id,
            gateway_id: row.gateway_id,
            grant_id: row.grant_id,
            last_seen_at: time(row.last_seen_at),
            client_address: row.client_address,
            user_agent: row.user_agent,
            identity: row
                .identity
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|e| StoreError::Corrupt(format!("session identity: {e}")))?,
        })
    }
}

pub(super) fn parse_status(s: &str) -> Result<SessionStatus, StoreError> {
    match s {
        "active" => Ok(SessionStatus::Active),
        "ended" => Ok(SessionStatus::Ended),
        "expired" => Ok(SessionStatus::Expired),
        "terminated" => Ok(SessionStatus::Terminated),
        other => Err(StoreError::Corrupt(format!(
            "unknown session status {other:?}"
        ))),
    }
}

pub(super) fn parse_cause(s: &str) -> Result<EndCause, StoreError> {
    EndCause::from_name(s).ok_or_else(|| StoreError::Corrupt(format!("unknown end cause {s:?}")))
}

/// `cause` as stored; `Unknown` is not a cause anybody can record.
pub(super) fn cause_to_db(cause: EndCause) -> Result<&'static str, StoreError> {
    match cause {
        EndCause::Unknown => Err(StoreError::Invalid("unknown end cause".to_owned())),
        known => Ok(known.as_str()),
    }
}

/// Keeps the sessions of `owner`: by user id, or, for a name no live user has, the sessions of
/// deleted users who had it.
pub(super) fn push_owner(query: &mut QueryBuilder<'_, EngineDb>, owner: &SessionOwner) {
    match owner {
        SessionOwner::User(id) => {
            query.push(" AND user_id = ").push_bind(id.clone());
        }
        SessionOwner::Deleted(name) => {
            query
                .push(" AND lower(user_name) = lower(")
                .push_bind(name.clone())
                .push(") AND user_id IN (SELECT id FROM users WHERE deleted_at IS NOT NULL)");
        }
    }
}

/// Appends ` AND column = value` for each condition of `which` that is set.
pub(super) fn push_conditions(query: &mut QueryBuilder<'_, EngineDb>, which: &ActiveSessions) {
    let columns = [
        ("project_id", &which.project_id),
        ("user_id", &which.user_id),
        ("gateway_id", &which.gateway_id),
        ("grant_id", &which.grant_id),
        ("resource_id", &which.resource_id),
        ("account_id", &which.account_id),
    ];
    for (column, value) in columns {
        if let Some(value) = value {
            query
                .push(format!(" AND {column} = "))
                .push_bind(value.clone());
        }
    }
    if which.without_grant {
        query.push(" AND grant_id IS NULL");
    }
    if let Some(before) = which.seen_before {
        query
            .push(" AND COALESCE(last_seen_at, created_at) < ")
            .push_bind(secs(before));
    }
}

pub(super) fn seq_from_db(seq: i64) -> Result<u64, StoreError> {
    u64::try_from(seq).map_err(|_| StoreError::Corrupt(format!("negative sequence {seq}")))
}

/// Appends one change to the log inside `tx` and returns its sequence number.
pub(super) async fn log_change(
    tx: &mut Transaction<'_, EngineDb>,
    session_id: &str,
    gateway_id: &str,
    status: &str,
    now: i64,
) -> Result<u64, StoreError> {
    super::serialise_change_log(tx).await?;
    let (seq,): (i64,) = sqlx::query_as(
        "INSERT INTO session_changes (session_id, gateway_id, status, changed_at) \
         VALUES ($1, $2, $3, $4) RETURNING seq",
    )
    .bind(session_id)
    .bind(gateway_id)
    .bind(status)
    .bind(now)
    .fetch_one(&mut **tx)
    .await
    .map_err(db_error)?;
    let seq = seq_from_db(seq)?;
    super::announce_change(tx, seq).await?;
    Ok(seq)
}
