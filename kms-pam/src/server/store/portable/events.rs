//! Session audit events: one row per event id, unique per `(session_id, seq)`.
//!
//! Inserts skip ids already stored (`ON CONFLICT (id) DO NOTHING`), so a batch a gateway sends
//! again changes nothing; a different event at a taken `seq` violates the unique key and the
//! whole batch is refused.

use std::time::SystemTime;

use async_trait::async_trait;

use super::{db_error, secs, EngineStore};
use crate::server::store::{EventLink, EventRecord, EventStore, StoreError};
use crate::session::SessionId;

#[derive(sqlx::FromRow)]
struct LinkRow {
    seq: i64,
    id: String,
    hash: String,
}

impl TryFrom<LinkRow> for EventLink {
    type Error = StoreError;

    fn try_from(row: LinkRow) -> Result<Self, StoreError> {
        Ok(Self {
            seq: seq_from_db(row.seq)?,
            id: row.id,
            hash: row.hash,
        })
    }
}

#[derive(sqlx::FromRow)]
struct EventRow {
    id: String,
    session_id: String,
    seq: i64,
    hash: String,
    event: String,
}

fn seq_from_db(seq: i64) -> Result<u64, StoreError> {
    u64::try_from(seq).map_err(|_| StoreError::Corrupt(format!("negative event seq {seq}")))
}

fn seq_to_db(seq: u64) -> Result<i64, StoreError> {
    i64::try_from(seq).map_err(|_| StoreError::Invalid(format!("event seq {seq} is too large")))
}

#[async_trait]
impl EventStore for EngineStore {
    async fn event_head(&self, session: &SessionId) -> Result<Option<EventLink>, StoreError> {
        let row: Option<LinkRow> = sqlx::query_as(
            "SELECT seq, id, hash FROM session_events WHERE session_id = $1 \
             ORDER BY seq DESC LIMIT 1",
        )
        .bind(session.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.map(EventLink::try_from).transpose()
    }

    async fn event_links(
        &self,
        session: &SessionId,
        from: u64,
        to: u64,
    ) -> Result<Vec<EventLink>, StoreError> {
        let rows: Vec<LinkRow> = sqlx::query_as(
            "SELECT seq, id, hash FROM session_events \
             WHERE session_id = $1 AND seq >= $2 AND seq <= $3 ORDER BY seq",
        )
        .bind(session.as_str())
        .bind(seq_to_db(from)?)
        .bind(seq_to_db(to)?)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.into_iter().map(EventLink::try_from).collect()
    }

    async fn insert_events(
        &self,
        events: &[EventRecord],
        received_at: SystemTime,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let mut inserted = 0;
        for event in events {
            let done = sqlx::query(
                "INSERT INTO session_events (id, session_id, seq, hash, event, received_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
            )
            .bind(&event.id)
            .bind(event.session_id.as_str())
            .bind(seq_to_db(event.seq)?)
            .bind(&event.hash)
            .bind(&event.json)
            .bind(secs(received_at))
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                super::unique_error(e, || {
                    format!(
                        "session {} already holds another event at seq {}",
                        event.session_id, event.seq
                    )
                })
            })?;
            inserted += done.rows_affected();
        }
        tx.commit().await.map_err(db_error)?;
        Ok(inserted)
    }

    async fn session_events(&self, session: &SessionId) -> Result<Vec<EventRecord>, StoreError> {
        let rows: Vec<EventRow> = sqlx::query_as(
            "SELECT id, session_id, seq, hash, event FROM session_events \
             WHERE session_id = $1 ORDER BY seq",
        )
        .bind(session.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.into_iter()
            .map(|row| {
                Ok(EventRecord {
                    id: row.id,
                    session_id: SessionId::new(row.session_id),
                    seq: seq_from_db(row.seq)?,
                    hash: row.hash,
                    json: row.event,
                })
            })
            .collect()
    }
}
