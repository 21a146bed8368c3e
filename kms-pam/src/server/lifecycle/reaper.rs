//! The background task that, every second, ends the sessions opened under a grant that expired
//! (cause `grant_expired`; a revoked grant's, `grant_revoked`, if its revocation left any), marks
//! sessions past their expiry as `expired` (cause `expiry`) and ends sessions nobody holds any
//! more as `ended` (cause `abandoned`), then wakes the gateways following the change log so they
//! cut them. A session opened under a grant that expires is itself set to expire with the grant
//! (`api::sessions`), so the gateway cuts it at that instant; this task records why.
//!
//! A session is held while its owner's client asks KMS about it: `pam access` reads the
//! session's status every second (`GET /v1/sessions/{id}`), and each such read by the owner is
//! the session's heartbeat. Silent for longer than `ServerConfig::abandon_after` (30 s) means
//! the client was killed, the laptop slept or the network went away.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use super::ending::{end_lapsed_grants, record_ended};
use crate::server::edge::state::{now, AppState};
use crate::server::store::ActiveSessions;
use crate::session::EndCause;

/// How often the reaper runs.
const PERIOD: Duration = Duration::from_secs(1);

/// Starts the task; it stops when `state.shutdown` is cancelled.
pub(crate) fn spawn(state: AppState) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PERIOD);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = state.shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            reap(&state).await;
        }
    })
}

/// One round: lapsed grants, expiry, then abandonment. Failures are logged and retried on the
/// next tick; sessions stay bounded by their certificates meanwhile.
pub(crate) async fn reap(state: &AppState) {
    // One instant for both, so a session that expires with its grant is seen lapsed first.
    let now = now();
    end_lapsed_grants(state, now).await;
    match state.store.expire_sessions(now).await {
        Ok(expired) => record_ended(state, &expired, EndCause::Expiry, "kms").await,
        Err(e) => tracing::warn!(error = %e, "marking expired sessions failed"),
    }
    let silent = ActiveSessions {
        seen_before: now.checked_sub(state.abandon_after),
        ..ActiveSessions::default()
    };
    if silent.seen_before.is_none() {
        return;
    }
    match state
        .store
        .end_sessions(&silent, EndCause::Abandoned, now)
        .await
    {
        Ok(ended) => record_ended(state, &ended, EndCause::Abandoned, "kms").await,
        Err(e) => tracing::warn!(error = %e, "ending abandoned sessions failed"),
    }
}
