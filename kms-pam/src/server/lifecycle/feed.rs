//! The session change log as gateways follow it (`GET /v1/gateway/changes`, answered in
//! `api/gateway_routes.rs`).
//!
//! The log lives in the store, so it survives restarts and a gateway that reconnects with an old
//! `after` gets every change since then. The in-process
//! [`ChangeFeed`](crate::server::edge::feed::ChangeFeed) only wakes waiting polls early;
//! [`follow_store`] feeds it the changes other replicas commit (PostgreSQL `NOTIFY`), and each
//! poll also re-reads the log every second, so a change missed by both is still seen within a
//! second.
//!
//! Answers (`seq` is never 0): `after=0` → the current `seq`, no changes (a fresh gateway
//! starts from now).
//! `after` greater than the current `seq` (the KMS database was replaced) → the current `seq` at
//! once with no changes: the gateway sees `seq < after` and must re-check every session it
//! holds ("re-list"). Otherwise changes of the caller's sessions after `after`, waiting up to
//! `wait_secs` (at most 30) for the first one.

use std::time::Duration;

use crate::kms::api::{Changes, SessionChange};
use crate::server::edge::error::ApiError;
use crate::server::edge::state::AppState;
use crate::server::store::StoreError;

/// Longest wait a gateway may ask for.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(30);
/// How often a waiting poll re-reads the log even without a wake-up.
pub(crate) const RECHECK: Duration = Duration::from_secs(1);
/// Most changes in one answer; the gateway asks again from the returned `seq`.
const PAGE: u32 = 500;

/// Wakes this replica's waiting polls for changes committed by any process sharing the store,
/// until shutdown; `None` when the store has no notification channel.
pub(crate) async fn follow_store(
    state: &AppState,
) -> Result<Option<tokio::task::JoinHandle<()>>, StoreError> {
    let Some(mut notifications) = state.store.change_notifications().await? else {
        return Ok(None);
    };
    let feed = state.feed.clone();
    let shutdown = state.shutdown.clone();
    Ok(Some(tokio::spawn(async move {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                seq = notifications.recv() => match seq {
                    Some(seq) => feed.publish(Some(seq)),
                    None => {
                        tracing::warn!("change notifications stopped; polls fall back to re-reading the log every second");
                        break;
                    }
                },
            }
        }
    })))
}

/// One read of the log, consistent with the `seq` it returns: the upper bound is read first,
/// so a change committed during the read is left for the next poll instead of being skipped.
///
/// The API's `seq` is the log's sequence number plus one, so it is never 0 and `after=0` keeps
/// its "from now" meaning even while the log is empty.
pub(crate) async fn read(
    state: &AppState,
    gateway_id: &str,
    after: u64,
) -> Result<Changes, ApiError> {
    let latest = state.store.latest_seq().await?.saturating_add(1);
    if after == 0 || after >= latest {
        return Ok(Changes {
            seq: latest,
            changes: Vec::new(),
        });
    }
    let records = state
        .store
        .changes(gateway_id, after - 1, latest - 1, PAGE)
        .await?;
    let seq = match records.last() {
        Some(last) if records.len() == PAGE as usize => last.seq.saturating_add(1),
        _ => latest,
    };
    let changes = records
        .into_iter()
        .map(|c| SessionChange {
            session_id: c.session_id.to_string(),
            status: c.status,
        })
        .collect();
    Ok(Changes { seq, changes })
}
