//! The in-process change feed: it wakes the gateways' waiting polls when the session change log
//! grows (`lifecycle/feed.rs` follows the store and reads the log; `api/gateway_routes.rs`
//! answers the polls).

use std::sync::Arc;

use tokio::sync::watch;

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

    /// A receiver woken by each newer `seq`.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }
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
