//! Sessions and the session change log.
//!
//! A status change and its log entry are written in one transaction, and sequence numbers follow
//! commit order: SQLite has one writer at a time (the transaction's first statement is the
//! write); PostgreSQL takes a lock on the log first and announces each entry to every replica
//! (the engine's `serialise_change_log` and `announce_change`).
//!
//! A new session is stored only if the grant, membership, user, account and gateway it stands on
//! still allow it (`INSERT_IF_STILL_ALLOWED`), inside the engine's `begin_session_create`: a
//! revocation either commits before (the insert sees it and stores nothing) or after the session
//! (and then ends it), never in between.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use sqlx::QueryBuilder;
use tokio::sync::mpsc;

use super::session_rows::{
    cause_to_db, log_change, parse_status, push_conditions, push_owner, seq_from_db, SessionRow,
    SELECT,
};
use super::{db_error, found, secs, EngineDb, EngineStore};
use crate::server::store::{
    ActiveSessions, ChangeRecord, EndedSessions, NewSessionRecord, SessionFilter, SessionRecord,
    SessionStore, SessionUpdate, StoreError, TokenHash,
};
use crate::session::{EndCause, SessionId};

/// Stores a new active session only if what allowed it still holds when it is written: the user
/// is enabled, not deleted, and still has the token the request came with (`$17`); they are an organisation administrator, a project administrator,
/// or a member opening it under a grant (`$14`) that still exists for them and the account, is
/// not revoked and has not expired (at `$12`, the session's start); the
/// account exists in the project; the gateway is not revoked. The route checked all this before,
/// but a revocation may have committed since, and it ends only the sessions it can see: so the
/// check is repeated here, under the engine's `begin_session_create` locks, which keep any
/// revocation from committing between this statement and the commit.
const INSERT_IF_STILL_ALLOWED: &str = "INSERT INTO sessions (id, project_id, user_id, user_name, \
     resource_id, resource_name, account_id, account_name, gateway_id, gateway_name, status, \
     reason, created_at, expires_at, grant_id, last_seen_at, client_address, user_agent, identity) \
     SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'active', $11, $12, $13, $14, $12, $15, $16, $18 \
     WHERE EXISTS (SELECT 1 FROM users u \
                    WHERE u.id = $3 AND u.disabled_at IS NULL AND u.deleted_at IS NULL \
                      AND ($17 IS NULL OR u.token_hash = $17 OR EXISTS (SELECT 1 FROM sso_credentials c \
                            WHERE c.access_hash = $17 AND c.user_id = u.id AND c.revoked_at IS NULL)) \
                      AND (u.admin OR EXISTS (SELECT 1 FROM project_members m \
                            WHERE m.project_id = $2 AND m.user_id = $3 \
                              AND (m.role = 'admin' OR (m.role = 'member' AND $14 IS NOT NULL))))) \
       AND EXISTS (SELECT 1 FROM accounts WHERE id = $7 AND project_id = $2) \
       AND EXISTS (SELECT 1 FROM gateways WHERE id = $9 AND revoked_at IS NULL) \
       AND ($14 IS NULL OR EXISTS (SELECT 1 FROM grants \
                                    WHERE id = $14 AND user_id = $3 AND account_id = $7 \
                                      AND revoked_at IS NULL \
                                      AND (expires_at IS NULL OR expires_at > $12)))";

#[async_trait]
impl SessionStore for EngineStore {
    async fn create_session(&self, new: NewSessionRecord) -> Result<SessionUpdate, StoreError> {
        let id = new.id.as_str();
        let now = secs(new.created_at);
        let identity = new
            .identity
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| StoreError::Invalid(format!("session identity: {e}")))?;
        let mut tx = super::begin_session_create(&self.pool, &new).await?;
        let inserted = sqlx::query(INSERT_IF_STILL_ALLOWED)
            .bind(id)
            .bind(&new.project_id)
            .bind(&new.user.id)
            .bind(&new.user.name)
            .bind(&new.account.resource_id)
            .bind(&new.account.resource)
            .bind(&new.account.id)
            .bind(&new.account.name)
            .bind(&new.gateway.id)
            .bind(&new.gateway.name)
            .bind(&new.reason)
            .bind(now)
            .bind(secs(new.expires_at))
            .bind(&new.grant_id)
            .bind(&new.client_address)
            .bind(&new.user_agent)
            .bind(new.token.as_ref().map(TokenHash::as_str))
            .bind(identity)
            .execute(&mut *tx)
            .await
            .map_err(|e| super::unique_error(e, || format!("session {id} already exists")))?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::Conflict(
                "access changed while the session was being opened (the grant, membership, \
                 user, account or gateway it needs is gone or no longer allows it)"
                    .to_owned(),
            ));
        }
        if let Some(key) = &new.key {
            sqlx::query(
                "INSERT INTO session_keys (session_id, gateway_key, ticket) VALUES ($1, $2, $3)",
            )
            .bind(id)
            .bind(&key.gateway_key)
            .bind(&key.ticket)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        }
        let seq = log_change(&mut tx, id, &new.gateway.id, "active", now).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(SessionUpdate {
            record: self.session(&new.id).await?,
            seq: Some(seq),
        })
    }

    async fn session(&self, id: &SessionId) -> Result<SessionRecord, StoreError> {
        let row: Option<SessionRow> = sqlx::query_as(&format!("{SELECT} WHERE id = $1"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        found(row, || format!("session {id}"))?.try_into()
    }

    async fn sessions(
        &self,
        project_id: &str,
        filter: &SessionFilter,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let mut query = QueryBuilder::<EngineDb>::new(SELECT);
        query.push(" WHERE project_id = ").push_bind(project_id);
        if filter.active_only {
            query.push(" AND status = 'active'");
        }
        if let Some(owner) = &filter.user {
            push_owner(&mut query, owner);
        }
        if let Some(resource) = &filter.resource {
            query.push(" AND resource_name = ").push_bind(resource);
        }
        query.push(" ORDER BY created_at DESC, id");
        let rows: Vec<SessionRow> = query
            .build_query_as()
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        rows.into_iter().map(SessionRecord::try_from).collect()
    }

    async fn end_session(
        &self,
        id: &SessionId,
        cause: EndCause,
        now: SystemTime,
    ) -> Result<SessionUpdate, StoreError> {
        let now = secs(now);
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        // A session already past its expiry ends as expired, whatever ended it: that is what
        // happened first, and what the expiry task would have recorded a moment later.
        let changed: Option<(String, String)> = sqlx::query_as(
            "UPDATE sessions SET \
               status = CASE WHEN expires_at <= $1 THEN 'expired' ELSE $2 END, \
               end_cause = CASE WHEN expires_at <= $1 THEN 'expiry' ELSE $3 END, \
               ended_at = CASE WHEN expires_at <= $1 THEN expires_at ELSE $1 END \
             WHERE id = $4 AND status = 'active' \
             RETURNING status, gateway_id",
        )
        .bind(now)
        .bind(cause.status().as_str())
        .bind(cause_to_db(cause)?)
        .bind(id.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let seq = match changed {
            Some((status, gateway_id)) => {
                Some(log_change(&mut tx, id.as_str(), &gateway_id, &status, now).await?)
            }
            None => None,
        };
        tx.commit().await.map_err(db_error)?;
        Ok(SessionUpdate {
            record: self.session(id).await?,
            seq,
        })
    }

    async fn expire_sessions(&self, now: SystemTime) -> Result<EndedSessions, StoreError> {
        let now = secs(now);
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let expired: Vec<(String, String)> = sqlx::query_as(
            "UPDATE sessions SET status = 'expired', end_cause = 'expiry', ended_at = expires_at \
             WHERE status = 'active' AND expires_at <= $1 RETURNING id, gateway_id",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        let mut last = None;
        for (session_id, gateway_id) in &expired {
            last = Some(log_change(&mut tx, session_id, gateway_id, "expired", now).await?);
        }
        tx.commit().await.map_err(db_error)?;
        Ok(EndedSessions {
            ids: expired
                .into_iter()
                .map(|(id, _)| SessionId::new(id))
                .collect(),
            seq: last,
        })
    }

    async fn end_sessions(
        &self,
        which: &ActiveSessions,
        cause: EndCause,
        now: SystemTime,
    ) -> Result<EndedSessions, StoreError> {
        let now = secs(now);
        let mut query =
            QueryBuilder::<EngineDb>::new("UPDATE sessions SET status = CASE WHEN expires_at < ");
        // As in `end_session`: one already past its expiry ends as expired. One that expires at
        // `now` ends for `cause`: a session set to expire with its grant ends when the grant
        // expires (the reaper passes the grant's expiry as `now`).
        query
            .push_bind(now)
            .push(" THEN 'expired' ELSE ")
            .push_bind(cause.status().as_str())
            .push(" END, end_cause = CASE WHEN expires_at < ")
            .push_bind(now)
            .push(" THEN 'expiry' ELSE ")
            .push_bind(cause_to_db(cause)?)
            .push(" END, ended_at = CASE WHEN expires_at < ")
            .push_bind(now)
            .push(" THEN expires_at ELSE ")
            .push_bind(now)
            .push(" END WHERE status = 'active'");
        push_conditions(&mut query, which);
        query.push(" RETURNING id, gateway_id, status");
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let ended: Vec<(String, String, String)> = query
            .build_query_as()
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?;
        let mut result = EndedSessions::default();
        for (session_id, gateway_id, status) in ended {
            result.seq = Some(log_change(&mut tx, &session_id, &gateway_id, &status, now).await?);
            result.ids.push(SessionId::new(session_id));
        }
        tx.commit().await.map_err(db_error)?;
        Ok(result)
    }

    async fn touch_session(&self, id: &SessionId, now: SystemTime) -> Result<(), StoreError> {
        let now = secs(now);
        // At most one write per session and second, whoever polls how often.
        sqlx::query(
            "UPDATE sessions SET last_seen_at = $1 \
             WHERE id = $2 AND status = 'active' AND COALESCE(last_seen_at, 0) < $1",
        )
        .bind(now)
        .bind(id.as_str())
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn grace_after_outage(
        &self,
        now: SystemTime,
        window: Duration,
    ) -> Result<u64, StoreError> {
        let window = i64::try_from(window.as_secs()).unwrap_or(i64::MAX);
        let now = secs(now);
        let (last,): (Option<i64>,) = sqlx::query_as(
            "SELECT MAX(COALESCE(last_seen_at, created_at)) FROM sessions WHERE status = 'active'",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db_error)?;
        let Some(last) = last.filter(|last| *last < now.saturating_sub(window)) else {
            return Ok(0);
        };
        // Two replicas starting together may both get here: the second writes the same grace.
        let touched = sqlx::query(
            "UPDATE sessions SET last_seen_at = $1 \
             WHERE status = 'active' AND COALESCE(last_seen_at, created_at) >= $2",
        )
        .bind(now)
        .bind(last.saturating_sub(window))
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(touched.rows_affected())
    }

    async fn latest_seq(&self) -> Result<u64, StoreError> {
        let (seq,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(seq), 0) FROM session_changes")
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?;
        seq_from_db(seq)
    }

    async fn change_notifications(&self) -> Result<Option<mpsc::Receiver<u64>>, StoreError> {
        super::change_notifications(&self.pool).await
    }

    async fn changes(
        &self,
        gateway_id: &str,
        after: u64,
        up_to: u64,
        limit: u32,
    ) -> Result<Vec<ChangeRecord>, StoreError> {
        let bound = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let rows: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT seq, session_id, status FROM session_changes \
             WHERE gateway_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4",
        )
        .bind(gateway_id)
        .bind(bound(after))
        .bind(bound(up_to))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.into_iter()
            .map(|(seq, session_id, status)| {
                Ok(ChangeRecord {
                    seq: seq_from_db(seq)?,
                    session_id: SessionId::new(session_id),
                    status: parse_status(&status)?,
                })
            })
            .collect()
    }
}
