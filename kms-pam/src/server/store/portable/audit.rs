//! Gateways' audit keys, KMS's signed session heads and resources' recording policies.

use std::time::SystemTime;

use async_trait::async_trait;

use super::{db_error, secs, time, EngineStore};
use crate::server::store::{
    AuditStore, EventRecord, HeadRecord, RecordingPolicyRecord, SessionKeyRecord, StoreError,
};
use crate::session::SessionId;

fn bytes_to_db(n: Option<u64>) -> Result<Option<i64>, StoreError> {
    n.map(|n| i64::try_from(n).map_err(|_| StoreError::Invalid(format!("{n} bytes is too many"))))
        .transpose()
}

fn bytes_from_db(n: Option<i64>) -> Result<Option<u64>, StoreError> {
    n.map(|n| u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("negative size {n}"))))
        .transpose()
}

#[async_trait]
impl AuditStore for EngineStore {
    async fn set_gateway_audit_key(
        &self,
        gateway_id: &str,
        public_key: &str,
        endorsement: &str,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO gateway_audit_keys (gateway_id, public_key, created_at, endorsement) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (gateway_id) \
             DO UPDATE SET public_key = $2, created_at = $3, endorsement = $4",
        )
        .bind(gateway_id)
        .bind(public_key)
        .bind(secs(now))
        .bind(endorsement)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn add_gateway_audit_key(
        &self,
        gateway_id: &str,
        public_key: &str,
        endorsement: &str,
        now: SystemTime,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO gateway_audit_keys (gateway_id, public_key, created_at, endorsement) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (gateway_id) DO NOTHING",
        )
        .bind(gateway_id)
        .bind(public_key)
        .bind(secs(now))
        .bind(endorsement)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn gateway_audit_key(
        &self,
        gateway_id: &str,
    ) -> Result<Option<(String, Option<String>)>, StoreError> {
        sqlx::query_as(
            "SELECT public_key, endorsement FROM gateway_audit_keys WHERE gateway_id = $1",
        )
        .bind(gateway_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)
    }

    async fn gateway_audit_keys(&self) -> Result<Vec<(String, String)>, StoreError> {
        sqlx::query_as("SELECT gateway_id, public_key FROM gateway_audit_keys")
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)
    }

    async fn unendorsed_gateway_audit_keys(&self) -> Result<Vec<(String, String)>, StoreError> {
        sqlx::query_as(
            "SELECT gateway_id, public_key FROM gateway_audit_keys WHERE endorsement IS NULL",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)
    }

    async fn endorse_gateway_audit_key(
        &self,
        gateway_id: &str,
        public_key: &str,
        endorsement: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE gateway_audit_keys SET endorsement = $3 \
             WHERE gateway_id = $1 AND public_key = $2 AND endorsement IS NULL",
        )
        .bind(gateway_id)
        .bind(public_key)
        .bind(endorsement)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn last_event(&self, session: &SessionId) -> Result<Option<EventRecord>, StoreError> {
        let row: Option<(String, i64, String, String)> = sqlx::query_as(
            "SELECT id, seq, hash, event FROM session_events WHERE session_id = $1 \
             ORDER BY seq DESC LIMIT 1",
        )
        .bind(session.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.map(|(id, seq, hash, json)| {
            Ok(EventRecord {
                id,
                session_id: session.clone(),
                seq: u64::try_from(seq)
                    .map_err(|_| StoreError::Corrupt(format!("negative event seq {seq}")))?,
                hash,
                json,
            })
        })
        .transpose()
    }

    async fn save_session_head(&self, head: &HeadRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO session_heads (session_id, head, signature, sealed_at) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (session_id) DO UPDATE SET head = $2, signature = $3, sealed_at = $4",
        )
        .bind(head.session_id.as_str())
        .bind(&head.head)
        .bind(&head.signature)
        .bind(secs(head.sealed_at))
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn session_key(
        &self,
        session: &SessionId,
    ) -> Result<Option<SessionKeyRecord>, StoreError> {
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT gateway_key, ticket FROM session_keys WHERE session_id = $1")
                .bind(session.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(db_error)?;
        Ok(row.map(|(gateway_key, ticket)| SessionKeyRecord {
            gateway_key,
            ticket,
        }))
    }

    async fn session_head(&self, session: &SessionId) -> Result<Option<HeadRecord>, StoreError> {
        let row: Option<(String, String, i64)> = sqlx::query_as(
            "SELECT head, signature, sealed_at FROM session_heads WHERE session_id = $1",
        )
        .bind(session.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(row.map(|(head, signature, sealed_at)| HeadRecord {
            session_id: session.clone(),
            head,
            signature,
            sealed_at: time(sealed_at),
        }))
    }

    async fn recording_policy(
        &self,
        resource_id: &str,
    ) -> Result<Option<RecordingPolicyRecord>, StoreError> {
        let row: Option<(String, Option<i64>, Option<i64>)> = sqlx::query_as(
            "SELECT unrecorded_streams, max_bytes, max_input_bytes FROM resource_recording \
             WHERE resource_id = $1",
        )
        .bind(resource_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.map(|(unrecorded_streams, max_bytes, max_input_bytes)| {
            Ok(RecordingPolicyRecord {
                unrecorded_streams,
                max_bytes: bytes_from_db(max_bytes)?,
                max_input_bytes: bytes_from_db(max_input_bytes)?,
            })
        })
        .transpose()
    }

    async fn set_recording_policy(
        &self,
        resource_id: &str,
        policy: &RecordingPolicyRecord,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO resource_recording \
               (resource_id, unrecorded_streams, max_bytes, max_input_bytes) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (resource_id) DO UPDATE SET unrecorded_streams = $2, max_bytes = $3, \
               max_input_bytes = $4",
        )
        .bind(resource_id)
        .bind(&policy.unrecorded_streams)
        .bind(bytes_to_db(policy.max_bytes)?)
        .bind(bytes_to_db(policy.max_input_bytes)?)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }
}
