//! Session audit events: one row per event id, unique per `(session_id, seq)`.
//!
//! An upload is appended in one transaction that first takes each session's append lock (the
//! engine's `begin_event_append`: SQLite's write lock, PostgreSQL advisory locks), then reads the
//! stored chain, has the caller link the upload to it and inserts. So an upload handled by one
//! replica waits while another replica appends to the same session, and then links to what that
//! one stored, instead of being refused for a gap that is about to close.
//!
//! Inserts skip ids already stored (`ON CONFLICT (id) DO NOTHING`), so a batch a gateway sends
//! again changes nothing; a different event at a taken `seq` violates the unique key and the
//! whole batch is refused.

use std::time::SystemTime;

use async_trait::async_trait;

use super::{db_error, secs, EngineStore};
use crate::server::store::{EventLink, EventRecord, EventSpan, EventStore, LinkEvents, StoreError};
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
    async fn append_events(
        &self,
        spans: &[EventSpan],
        received_at: SystemTime,
        link: &LinkEvents<'_>,
    ) -> Result<u64, StoreError> {
        let sessions: Vec<&SessionId> = spans.iter().map(|s| &s.session_id).collect();
        let mut tx = super::begin_event_append(&self.pool, &sessions).await?;
        let mut inserted = 0;
        for span in spans {
            let session = span.session_id.as_str();
            let head: Option<LinkRow> = sqlx::query_as(
                "SELECT seq, id, hash FROM session_events WHERE session_id = $1 \
                 ORDER BY seq DESC LIMIT 1",
            )
            .bind(session)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?;
            let head = head.map(EventLink::try_from).transpose()?;
            let stored: Vec<LinkRow> = sqlx::query_as(
                "SELECT seq, id, hash FROM session_events \
                 WHERE session_id = $1 AND seq >= $2 AND seq <= $3 ORDER BY seq",
            )
            .bind(session)
            .bind(seq_to_db(span.first_seq)?)
            .bind(seq_to_db(span.last_seq)?)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?;
            let stored = stored
                .into_iter()
                .map(EventLink::try_from)
                .collect::<Result<Vec<_>, _>>()?;
            for event in link(&span.session_id, head, &stored)? {
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
