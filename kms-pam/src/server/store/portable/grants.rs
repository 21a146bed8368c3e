//! Grants of accounts to users: a grant may expire (`expires_at`) and may be revoked, after
//! which it stays listed until a new grant for the same user and account replaces it.

use std::time::SystemTime;

use async_trait::async_trait;

use super::{
    db_error, duration_from_db, duration_to_db, found, new_id, opt_time, secs, time, unique_error,
    EngineStore,
};
use crate::server::store::{GrantRecord, GrantRevocation, GrantStore, NewGrant, StoreError};

const SELECT: &str = "SELECT gr.id, gr.project_id, gr.account_id, a.name AS account, \
                      r.name AS resource, gr.user_id, u.name AS user_name, \
                      gr.max_duration_secs, gr.created_at, gr.expires_at, gr.revoked_at, \
                      gr.revoked_by, gr.revoke_reason \
                      FROM grants gr \
                      JOIN accounts a ON a.id = gr.account_id \
                      JOIN resources r ON r.id = a.resource_id \
                      JOIN users u ON u.id = gr.user_id";

#[derive(sqlx::FromRow)]
struct GrantRow {
    id: String,
    project_id: String,
    account_id: String,
    account: String,
    resource: String,
    user_id: String,
    user_name: String,
    max_duration_secs: i64,
    created_at: i64,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    revoked_by: Option<String>,
    revoke_reason: Option<String>,
}

impl TryFrom<GrantRow> for GrantRecord {
    type Error = StoreError;

    fn try_from(row: GrantRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: row.id,
            project_id: row.project_id,
            account_id: row.account_id,
            account: row.account,
            resource: row.resource,
            user_id: row.user_id,
            user: row.user_name,
            max_duration_secs: duration_from_db(row.max_duration_secs)?,
            created_at: time(row.created_at),
            expires_at: opt_time(row.expires_at),
            revoked: row.revoked_at.map(|at| GrantRevocation {
                at: time(at),
                by: row.revoked_by.unwrap_or_default(),
                reason: row.revoke_reason.unwrap_or_default(),
            }),
        })
    }
}

#[async_trait]
impl GrantStore for EngineStore {
    async fn create_grant(&self, new: NewGrant) -> Result<GrantRecord, StoreError> {
        let id = new_id();
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        // A lapsed grant for the same user and account gives way to the new one.
        sqlx::query(
            "DELETE FROM grants WHERE account_id = $1 AND user_id = $2 \
             AND (revoked_at IS NOT NULL OR expires_at <= $3)",
        )
        .bind(&new.account_id)
        .bind(&new.user_id)
        .bind(secs(new.now))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        sqlx::query(
            "INSERT INTO grants \
             (id, project_id, account_id, user_id, max_duration_secs, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&id)
        .bind(&new.project_id)
        .bind(&new.account_id)
        .bind(&new.user_id)
        .bind(duration_to_db(new.max_duration_secs)?)
        .bind(secs(new.now))
        .bind(new.expires_at.map(secs))
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            unique_error(e, || {
                "the user already holds an active grant for this account; revoke it first".into()
            })
        })?;
        tx.commit().await.map_err(db_error)?;
        let row: Option<GrantRow> = sqlx::query_as(&format!("{SELECT} WHERE gr.id = $1"))
            .bind(&id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        found(row, || format!("grant {id}"))?.try_into()
    }

    async fn grants(
        &self,
        project_id: &str,
        user_id: Option<&str>,
    ) -> Result<Vec<GrantRecord>, StoreError> {
        let by_user = if user_id.is_some() {
            " AND gr.user_id = $2"
        } else {
            ""
        };
        let sql =
            format!("{SELECT} WHERE gr.project_id = $1{by_user} ORDER BY r.name, a.name, u.name");
        let mut query = sqlx::query_as::<_, GrantRow>(&sql).bind(project_id);
        if let Some(user_id) = user_id {
            query = query.bind(user_id);
        }
        let rows = query.fetch_all(&self.pool).await.map_err(db_error)?;
        rows.into_iter().map(GrantRecord::try_from).collect()
    }

    async fn grant(&self, project_id: &str, id: &str) -> Result<GrantRecord, StoreError> {
        let sql = format!("{SELECT} WHERE gr.project_id = $1 AND gr.id = $2");
        let row: Option<GrantRow> = sqlx::query_as(&sql)
            .bind(project_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        found(row, || format!("grant {id}"))?.try_into()
    }

    async fn grant_for(
        &self,
        account_id: &str,
        user_id: &str,
    ) -> Result<Option<GrantRecord>, StoreError> {
        let sql = format!("{SELECT} WHERE gr.account_id = $1 AND gr.user_id = $2");
        let row: Option<GrantRow> = sqlx::query_as(&sql)
            .bind(account_id)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        row.map(GrantRecord::try_from).transpose()
    }

    async fn delete_grant(&self, project_id: &str, id: &str) -> Result<(), StoreError> {
        let deleted = sqlx::query("DELETE FROM grants WHERE project_id = $1 AND id = $2")
            .bind(project_id)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        if deleted.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("grant {id}")));
        }
        Ok(())
    }

    async fn revoke_grant(
        &self,
        project_id: &str,
        id: &str,
        by: &str,
        reason: &str,
        now: SystemTime,
    ) -> Result<GrantRecord, StoreError> {
        let revoked = sqlx::query(
            "UPDATE grants SET revoked_at = $3, revoked_by = $4, revoke_reason = $5 \
             WHERE project_id = $1 AND id = $2 AND revoked_at IS NULL",
        )
        .bind(project_id)
        .bind(id)
        .bind(secs(now))
        .bind(by)
        .bind(reason)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        let grant = self.grant(project_id, id).await?;
        if revoked.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "grant {id} is already revoked"
            )));
        }
        Ok(grant)
    }

    async fn lapsed_grants(&self, now: SystemTime) -> Result<Vec<GrantRecord>, StoreError> {
        let sql = format!(
            "{SELECT} WHERE (gr.revoked_at IS NOT NULL OR gr.expires_at <= $1) \
             AND EXISTS (SELECT 1 FROM sessions s \
                          WHERE s.grant_id = gr.id AND s.status = 'active')"
        );
        let rows: Vec<GrantRow> = sqlx::query_as(&sql)
            .bind(secs(now))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        rows.into_iter().map(GrantRecord::try_from).collect()
    }
}
