//! `GET /v1/gateway/changes`: gateways follow the session change log by sequence number.
//!
//! The log lives in the store, so it survives restarts and a gateway that reconnects with an old
//! `after` gets every change since then. The in-process [`ChangeFeed`] only wakes waiting polls
//! early; [`follow_store`] feeds it the changes other replicas commit (PostgreSQL `NOTIFY`), and
//! each poll also re-reads the log every second, so a change missed by both is still seen within
//! a second.
//!
//! Answers (`seq` is never 0): `after=0` → the current `seq`, no changes (a fresh gateway
//! starts from now).
//! `after` greater than the current `seq` (the KMS database was replaced) → the current `seq` at
//! once with no changes: the gateway sees `seq < after` and must re-check every session it
//! holds ("re-list"). Otherwise changes of the caller's sessions after `after`, waiting up to
//! `wait_secs` (at most 30) for the first one.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use tokio::sync::watch;
use tokio::time::Instant;

use super::auth::GatewayCaller;
use super::error::{ApiError, ApiQuery};
use super::state::AppState;
use super::store::StoreError;
use crate::kms::api::{Changes, SessionChange};

/// Longest wait a gateway may ask for.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(30);
/// How often a waiting poll re-reads the log even without a wake-up.
const RECHECK: Duration = Duration::from_secs(1);
/// Most changes in one answer; the gateway asks again from the returned `seq`.
const PAGE: u32 = 500;

/// Publishes the latest sequence number to waiting polls.
#[derive(Clone, Debug)]
pub(crate) struct ChangeFeed(Arc<watch::Sender<u64>>);

impl ChangeFeed {
    /// A feed starting at `seq`.
    pub(crate) fn new(seq: u64) -> Self {
        Self(Arc::new(watch::Sender::new(seq)))
    }

    /// Announces that the log reached `seq` (no-op for `None` or an older number).
    pub(crate) fn publish(&self, seq: Option<u64>) {
        if let Some(seq) = seq {
            self.0.send_if_modified(|latest| {
                let newer = seq > *latest;
                if newer {
                    *latest = seq;
                }
                newer
            });
        }
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }
}

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

/// Query of `GET /v1/gateway/changes`.
#[derive(Debug, Deserialize)]
pub(crate) struct ChangesQuery {
    #[serde(default)]
    after: u64,
    #[serde(default)]
    wait_secs: u64,
}

/// `GET /v1/gateway/changes?after=SEQ&wait_secs=N`.
pub(crate) async fn changes(
    State(state): State<AppState>,
    GatewayCaller(gateway): GatewayCaller,
    ApiQuery(query): ApiQuery<ChangesQuery>,
) -> Result<Json<Changes>, ApiError> {
    let wait = Duration::from_secs(query.wait_secs).min(MAX_WAIT);
    let deadline = Instant::now() + wait;
    let mut wake = state.feed.subscribe();
    loop {
        wake.borrow_and_update();
        let answer = read(&state, &gateway.id, query.after).await?;
        let final_answer =
            !answer.changes.is_empty() || query.after == 0 || answer.seq < query.after;
        let left = deadline.saturating_duration_since(Instant::now());
        if final_answer || left.is_zero() {
            return Ok(Json(answer));
        }
        tokio::select! {
            changed = wake.changed() => {
                if changed.is_err() {
                    tokio::time::sleep(left.min(RECHECK)).await;
                }
            }
            () = tokio::time::sleep(left.min(RECHECK)) => {}
            () = state.shutdown.cancelled() => return Ok(Json(answer)),
        }
    }
}

/// One read of the log, consistent with the `seq` it returns: the upper bound is read first,
/// so a change committed during the read is left for the next poll instead of being skipped.
///
/// The API's `seq` is the log's sequence number plus one, so it is never 0 and `after=0` keeps
/// its "from now" meaning even while the log is empty.
async fn read(state: &AppState, gateway_id: &str, after: u64) -> Result<Changes, ApiError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn feed_only_moves_forward_and_wakes_subscribers() {
        let feed = ChangeFeed::new(3);
        let mut rx = feed.subscribe();
        feed.publish(Some(2));
        feed.publish(None);
        assert!(!rx.has_changed().unwrap());
        feed.publish(Some(5));
        assert!(rx.has_changed().unwrap());
        assert_eq!(*rx.borrow_and_update(), 5);
    }
}
