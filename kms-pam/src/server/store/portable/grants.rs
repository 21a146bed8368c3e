//! Grants of accounts to users.

use async_trait::async_trait;

use super::{
    db_error, duration_from_db, duration_to_db, found, new_id, secs, time, unique_error,
    EngineStore,
};
use crate::server::store::{GrantRecord, GrantStore, NewGrant, StoreError};

const SELECT: &str = "SELECT gr.id, gr.project_id, gr.account_id, a.name AS account, \
                      r.name AS resource, gr.user_id, u.name AS user_name, \
                      gr.max_duration_secs, gr.created_at \
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
        })
    }
}

#[async_trait]
impl GrantStore for EngineStore {
    async fn create_grant(&self, new: NewGrant) -> Result<GrantRecord, StoreError> {
        let id = new_id();
        sqlx::query(
            "INSERT INTO grants \
             (id, project_id, account_id, user_id, max_duration_secs, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(&new.project_id)
        .bind(&new.account_id)
        .bind(&new.user_id)
        .bind(duration_to_db(new.max_duration_secs)?)
        .bind(secs(new.now))
        .execute(&self.pool)
        .await
        .map_err(|e| {
            unique_error(e, || {
                "the user already holds a grant for this account".into()
            })
        })?;
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
}
