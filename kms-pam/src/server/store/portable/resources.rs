//! PAM resources.

use async_trait::async_trait;

use super::{db_error, found, new_id, secs, time, unique_error, EngineStore};
use crate::server::store::{
    NewResource, ResourceChange, ResourceRecord, ResourceStore, StoreError,
};

const SELECT: &str = "SELECT r.id, r.project_id, r.name, r.kind, r.url, r.gateway_id, \
                      g.name AS gateway, r.ssl_verify, r.ca_cert, r.created_at \
                      FROM resources r JOIN gateways g ON g.id = r.gateway_id";

#[derive(sqlx::FromRow)]
struct ResourceRow {
    id: String,
    project_id: String,
    name: String,
    kind: String,
    url: String,
    gateway_id: String,
    gateway: String,
    ssl_verify: bool,
    ca_cert: Option<String>,
    created_at: i64,
}

impl From<ResourceRow> for ResourceRecord {
    fn from(row: ResourceRow) -> Self {
        Self {
            id: row.id,
            project_id: row.project_id,
            name: row.name,
            kind: row.kind,
            url: row.url,
            gateway_id: row.gateway_id,
            gateway: row.gateway,
            ssl_verify: row.ssl_verify,
            ca_cert: row.ca_cert,
            created_at: time(row.created_at),
        }
    }
}

#[async_trait]
impl ResourceStore for EngineStore {
    async fn create_resource(&self, new: NewResource) -> Result<ResourceRecord, StoreError> {
        let id = new_id();
        sqlx::query(
            "INSERT INTO resources \
             (id, project_id, name, kind, url, gateway_id, ssl_verify, ca_cert, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&id)
        .bind(&new.project_id)
        .bind(&new.name)
        .bind(&new.kind)
        .bind(&new.url)
        .bind(&new.gateway_id)
        .bind(new.ssl_verify)
        .bind(&new.ca_cert)
        .bind(secs(new.now))
        .execute(&self.pool)
        .await
        .map_err(|e| unique_error(e, || format!("resource {} already exists", new.name)))?;
        self.resource_by_id(&id).await
    }

    async fn resources(&self, project_id: &str) -> Result<Vec<ResourceRecord>, StoreError> {
        let rows: Vec<ResourceRow> =
            sqlx::query_as(&format!("{SELECT} WHERE r.project_id = $1 ORDER BY r.name"))
                .bind(project_id)
                .fetch_all(&self.pool)
                .await
                .map_err(db_error)?;
        Ok(rows.into_iter().map(ResourceRecord::from).collect())
    }

    async fn resource(&self, project_id: &str, name: &str) -> Result<ResourceRecord, StoreError> {
        let row: Option<ResourceRow> =
            sqlx::query_as(&format!("{SELECT} WHERE r.project_id = $1 AND r.name = $2"))
                .bind(project_id)
                .bind(name)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_error)?;
        found(row, || format!("resource {name}")).map(ResourceRecord::from)
    }

    async fn resource_by_id(&self, id: &str) -> Result<ResourceRecord, StoreError> {
        let row: Option<ResourceRow> = sqlx::query_as(&format!("{SELECT} WHERE r.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        found(row, || format!("resource {id}")).map(ResourceRecord::from)
    }

    async fn update_resource(&self, change: ResourceChange) -> Result<ResourceRecord, StoreError> {
        let updated = sqlx::query(
            "UPDATE resources SET url = $1, gateway_id = $2, ssl_verify = $3, ca_cert = $4 \
             WHERE id = $5",
        )
        .bind(&change.url)
        .bind(&change.gateway_id)
        .bind(change.ssl_verify)
        .bind(&change.ca_cert)
        .bind(&change.id)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("resource {}", change.id)));
        }
        self.resource_by_id(&change.id).await
    }

    async fn delete_resource(&self, project_id: &str, name: &str) -> Result<(), StoreError> {
        // Accounts and grants go with it through ON DELETE CASCADE.
        let deleted = sqlx::query("DELETE FROM resources WHERE project_id = $1 AND name = $2")
            .bind(project_id)
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        if deleted.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("resource {name}")));
        }
        Ok(())
    }
}
