//! The background task that marks sessions past their expiry as `expired` (cause `expiry`)
//! every second and wakes the gateways following the change log.

use std::time::{Duration, SystemTime};

use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use super::state::AppState;

/// How often expired sessions are marked.
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
            match state.store.expire_sessions(SystemTime::now()).await {
                Ok(seq) => state.feed.publish(seq),
                // The next tick retries; sessions stay bounded by their certificates meanwhile.
                Err(e) => tracing::warn!(error = %e, "marking expired sessions failed"),
            }
        }
    })
}
