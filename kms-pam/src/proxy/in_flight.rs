//! Counting what a session (or the whole gateway) still has in flight (requests whose end is not
//! recorded yet, stream recorders still writing), so that the gateway records the session's end
//! after them (the end is the last event of the session's signed record), and flushes its audit
//! sink at shutdown only once they have written their last events.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

/// A session's count of unfinished work.
#[derive(Clone, Debug, Default)]
pub(crate) struct InFlight(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    count: AtomicUsize,
    idle: Notify,
}

/// One unit of unfinished work; dropping it finishes it.
#[derive(Debug)]
pub(crate) struct InFlightGuard(Arc<Inner>);

impl InFlight {
    /// Starts one unit of work.
    pub(crate) fn enter(&self) -> InFlightGuard {
        self.0.count.fetch_add(1, Ordering::AcqRel);
        InFlightGuard(self.0.clone())
    }

    /// Waits until nothing is in flight, at most `limit`. Returns whether it got there.
    pub(crate) async fn idle(&self, limit: Duration) -> bool {
        let wait = async {
            loop {
                let notified = self.0.idle.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if self.0.count.load(Ordering::Acquire) == 0 {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(limit, wait).await.is_ok()
    }

    /// How many units are in flight.
    pub(crate) fn count(&self) -> usize {
        self.0.count.load(Ordering::Acquire)
    }
}

impl InFlightGuard {
    /// Another unit of the same session's work (a stream's recorder outliving its request).
    pub(crate) fn another(&self) -> Self {
        self.0.count.fetch_add(1, Ordering::AcqRel);
        Self(self.0.clone())
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn idle_waits_for_every_guard() {
        let in_flight = InFlight::default();
        assert!(in_flight.idle(Duration::from_millis(10)).await);
        let first = in_flight.enter();
        let second = first.another();
        assert_eq!(in_flight.count(), 2);
        assert!(!in_flight.idle(Duration::from_millis(20)).await);
        let waiter = {
            let in_flight = in_flight.clone();
            tokio::spawn(async move { in_flight.idle(Duration::from_secs(5)).await })
        };
        drop(first);
        tokio::task::yield_now().await;
        drop(second);
        assert!(waiter.await.unwrap());
    }
}
