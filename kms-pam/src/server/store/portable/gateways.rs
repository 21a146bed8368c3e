//! Gateways, enrollment tokens, heartbeats and revocation. A revoked gateway has no token hash
//! (so its token matches nothing) and `revoked_at` set, until it enrolls again. A gateway's
//! reach is kept as the JSON its last heartbeat sent (NULL: the default, directly).

use std::time::SystemTime;

use async_trait::async_trait;

use super::{db_error, found, new_id, opt_time, secs, time, unique_error, EngineStore};
use crate::kms::api::GatewayReach;
use crate::server::store::{
    Enrollment, GatewayRecord, GatewayStore, NewGateway, StoreError, TokenHash,
};

const COLUMNS: &str = "g.id, g.name, g.address, g.token_hash IS NOT NULL AS enrolled, \
                       g.last_heartbeat, g.revoked_at IS NOT NULL AS revoked, g.created_at, \
                       g.allowed_url_hosts, g.reach";

#[derive(sqlx::FromRow)]
struct GatewayRow {
    id: String,
    name: String,
    address: Option<String>,
    enrolled: bool,
    last_heartbeat: Option<i64>,
    revoked: bool,
    created_at: i64,
    allowed_url_hosts: String,
    reach: Option<String>,
}

impl TryFrom<GatewayRow> for GatewayRecord {
    type Error = StoreError;

    fn try_from(row: GatewayRow) -> Result<Self, StoreError> {
        let reach = match &row.reach {
            None => GatewayReach::default(),
            Some(json) => serde_json::from_str(json).map_err(|e| {
                StoreError::Corrupt(format!("the reach of gateway {}: {e}", row.name))
            })?,
        };
        Ok(Self {
            id: row.id,
            name: row.name,
            address: row.address,
            enrolled: row.enrolled,
            last_heartbeat: opt_time(row.last_heartbeat),
            revoked: row.revoked,
            created_at: time(row.created_at),
            allowed_url_hosts: row
                .allowed_url_hosts
                .lines()
                .filter(|line| !line.is_empty())
                .map(str::to_owned)
                .collect(),
            reach,
        })
    }
}

impl EngineStore {
    async fn gateway_where(
        &self,
        condition: &str,
        value: &str,
        what: impl FnOnce() -> String,
    ) -> Result<GatewayRecord, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM gateways g WHERE {condition}");
        let row: Option<GatewayRow> = sqlx::query_as(&sql)
            .bind(value)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        found(row, what).and_then(GatewayRecord::try_from)
    }
}

#[async_trait]
impl GatewayStore for EngineStore {
    async fn create_gateway(&self, new: NewGateway) -> Result<GatewayRecord, StoreError> {
        let id = new_id();
        let now = secs(new.now);
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        sqlx::query("INSERT INTO gateways (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(&id)
            .bind(&new.name)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| unique_error(e, || format!("gateway {} already exists", new.name)))?;
        sqlx::query(
            "INSERT INTO enrollment_tokens (token_hash, gateway_id, expires_at, created_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(new.enrollment.as_str())
        .bind(&id)
        .bind(secs(new.enrollment_expires_at))
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        for project_id in &new.project_ids {
            sqlx::query(
                "INSERT INTO gateway_projects (gateway_id, project_id, created_at) \
                 VALUES ($1, $2, $3)",
            )
            .bind(&id)
            .bind(project_id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(GatewayRecord {
            id,
            name: new.name,
            address: None,
            enrolled: false,
            last_heartbeat: None,
            revoked: false,
            created_at: time(now),
            allowed_url_hosts: Vec::new(),
            reach: GatewayReach::default(),
        })
    }

    async fn gateways(&self) -> Result<Vec<GatewayRecord>, StoreError> {
        let rows: Vec<GatewayRow> =
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM gateways g ORDER BY g.name"))
                .fetch_all(&self.pool)
                .await
                .map_err(db_error)?;
        rows.into_iter().map(GatewayRecord::try_from).collect()
    }

    async fn gateway_by_name(&self, name: &str) -> Result<GatewayRecord, StoreError> {
        self.gateway_where("g.name = $1", name, || format!("gateway {name}"))
            .await
    }

    async fn gateway_by_id(&self, id: &str) -> Result<GatewayRecord, StoreError> {
        self.gateway_where("g.id = $1", id, || format!("gateway {id}"))
            .await
    }

    async fn gateway_by_token(&self, token: &TokenHash) -> Result<GatewayRecord, StoreError> {
        self.gateway_where("g.token_hash = $1", token.as_str(), || {
            "gateway token".to_owned()
        })
        .await
    }

    async fn check_enrollment(
        &self,
        name: &str,
        enrollment: &TokenHash,
        now: SystemTime,
    ) -> Result<GatewayRecord, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM gateways g \
             JOIN enrollment_tokens e ON e.gateway_id = g.id \
             WHERE g.name = $1 AND e.token_hash = $2 AND e.spent_at IS NULL AND e.expires_at > $3"
        );
        let row: Option<GatewayRow> = sqlx::query_as(&sql)
            .bind(name)
            .bind(enrollment.as_str())
            .bind(secs(now))
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        found(row, || "valid enrollment token".to_owned()).and_then(GatewayRecord::try_from)
    }

    async fn complete_enrollment(
        &self,
        enrollment: Enrollment,
    ) -> Result<GatewayRecord, StoreError> {
        let now = secs(enrollment.now);
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let spent = sqlx::query(
            "UPDATE enrollment_tokens SET spent_at = $1 \
             WHERE token_hash = $2 AND gateway_id = $3 AND spent_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .bind(enrollment.enrollment.as_str())
        .bind(&enrollment.gateway_id)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if spent.rows_affected() != 1 {
            return Err(StoreError::Conflict(
                "the enrollment token was used or expired meanwhile".to_owned(),
            ));
        }
        sqlx::query(
            "UPDATE gateways SET token_hash = $1, address = $2, enrolled_at = $3, \
             last_heartbeat = $3, revoked_at = NULL, reach = NULL WHERE id = $4",
        )
        .bind(enrollment.token.as_str())
        .bind(&enrollment.address)
        .bind(now)
        .bind(&enrollment.gateway_id)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        self.gateway_by_id(&enrollment.gateway_id).await
    }

    async fn record_heartbeat(
        &self,
        gateway_id: &str,
        address: &str,
        reach: &GatewayReach,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        let reach = serde_json::to_string(reach)
            .map_err(|e| StoreError::Invalid(format!("the reach of gateway {gateway_id}: {e}")))?;
        let updated = sqlx::query(
            "UPDATE gateways SET address = $1, reach = $2, last_heartbeat = $3 WHERE id = $4",
        )
        .bind(address)
        .bind(reach)
        .bind(secs(now))
        .bind(gateway_id)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("gateway {gateway_id}")));
        }
        Ok(())
    }

    async fn revoke_gateway(&self, id: &str, now: SystemTime) -> Result<GatewayRecord, StoreError> {
        let now = secs(now);
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let revoked =
            sqlx::query("UPDATE gateways SET token_hash = NULL, revoked_at = $1 WHERE id = $2")
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        if revoked.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("gateway {id}")));
        }
        sqlx::query(
            "UPDATE enrollment_tokens SET spent_at = $1 WHERE gateway_id = $2 AND spent_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        self.gateway_by_id(id).await
    }

    async fn renew_enrollment(
        &self,
        gateway_id: &str,
        enrollment: &TokenHash,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO enrollment_tokens (token_hash, gateway_id, expires_at, created_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(enrollment.as_str())
        .bind(gateway_id)
        .bind(secs(expires_at))
        .bind(secs(now))
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn gateway_projects(&self) -> Result<Vec<(String, String)>, StoreError> {
        sqlx::query_as(
            "SELECT gp.gateway_id, p.name FROM gateway_projects gp \
             JOIN projects p ON p.id = gp.project_id \
             WHERE p.deleted_at IS NULL ORDER BY p.name, gp.gateway_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)
    }

    async fn gateway_serves(&self, gateway_id: &str, project_id: &str) -> Result<bool, StoreError> {
        let row: Option<(String,)> = sqlx::query_as(
            "SELECT gateway_id FROM gateway_projects WHERE gateway_id = $1 AND project_id = $2",
        )
        .bind(gateway_id)
        .bind(project_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(row.is_some())
    }

    async fn assign_gateway(
        &self,
        gateway_id: &str,
        project_id: &str,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO gateway_projects (gateway_id, project_id, created_at) \
             VALUES ($1, $2, $3) ON CONFLICT (gateway_id, project_id) DO NOTHING",
        )
        .bind(gateway_id)
        .bind(project_id)
        .bind(secs(now))
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn set_gateway_sealing_key(
        &self,
        gateway_id: &str,
        public_key: &str,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO gateway_sealing_keys (gateway_id, public_key, created_at) \
             VALUES ($1, $2, $3) ON CONFLICT (gateway_id) \
             DO UPDATE SET public_key = $2, created_at = $3",
        )
        .bind(gateway_id)
        .bind(public_key)
        .bind(secs(now))
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn unassign_gateway(&self, gateway_id: &str, project_id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM gateway_projects WHERE gateway_id = $1 AND project_id = $2")
            .bind(gateway_id)
            .bind(project_id)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn set_gateway_allow_list(
        &self,
        gateway_id: &str,
        patterns: &[String],
    ) -> Result<GatewayRecord, StoreError> {
        let updated = sqlx::query("UPDATE gateways SET allowed_url_hosts = $1 WHERE id = $2")
            .bind(patterns.join("\n"))
            .bind(gateway_id)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("gateway {gateway_id}")));
        }
        self.gateway_by_id(gateway_id).await
    }

    async fn add_gateway_sealing_key(
        &self,
        gateway_id: &str,
        public_key: &str,
        now: SystemTime,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO gateway_sealing_keys (gateway_id, public_key, created_at) \
             VALUES ($1, $2, $3) ON CONFLICT (gateway_id) DO NOTHING",
        )
        .bind(gateway_id)
        .bind(public_key)
        .bind(secs(now))
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn gateway_sealing_key(&self, gateway_id: &str) -> Result<Option<String>, StoreError> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT public_key FROM gateway_sealing_keys WHERE gateway_id = $1")
                .bind(gateway_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_error)?;
        Ok(row.map(|(key,)| key))
    }
}
