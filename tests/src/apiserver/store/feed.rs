//! The change feed: what watches replay and follow.

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::broadcast;

use super::{Inner, Store, Stored};
use crate::apiserver::catalog::Resource;

/// Watch event types the store produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One committed write, as watches see it.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub(crate) event: EventType,
    pub(crate) resource: &'static Resource,
    pub(crate) namespace: String,
    pub(crate) rv: u64,
    pub(crate) current: Stored,
    /// The object before a modification, so selector watches can turn it into ADDED/DELETED.
    pub(crate) previous: Option<Arc<Value>>,
}

/// Where a new watch starts: changes to replay first, then the live feed.
pub(crate) struct WatchStart {
    pub(crate) backlog: Vec<Change>,
    pub(crate) live: broadcast::Receiver<Change>,
    /// The requested version is older than the kept history: (requested, oldest kept).
    pub(crate) too_old: Option<(u64, u64)>,
}

impl Inner {
    /// The current objects of `resource` as ADDED changes: the start of an unversioned watch.
    fn current_as_added(
        &self,
        resource: &'static Resource,
        namespace: Option<&str>,
    ) -> Vec<Change> {
        self.objects
            .iter()
            .filter(|((group, plural, ns, _), _)| {
                resource.is(group, plural) && namespace.is_none_or(|wanted| ns == wanted)
            })
            .map(|((_, _, ns, _), stored)| Change {
                event: EventType::Added,
                resource,
                namespace: ns.clone(),
                rv: self.rv,
                current: stored.clone(),
                previous: None,
            })
            .collect()
    }
}

impl Store {
    /// Subscribes to changes of `resource`; `since` = None replays the current objects as ADDED,
    /// `Some(rv)` replays the kept changes after `rv`, as the real watch cache does.
    pub(crate) fn watch(
        &self,
        resource: &'static Resource,
        namespace: Option<&str>,
        since: Option<u64>,
    ) -> WatchStart {
        let inner = self.lock();
        // Subscribing under the lock: no change can fall between the backlog and the feed.
        let live = self.changes.subscribe();
        let Some(since) = since else {
            let backlog = inner.current_as_added(resource, namespace);
            return WatchStart {
                backlog,
                live,
                too_old: None,
            };
        };
        let oldest_kept = inner.history.front().map_or(inner.rv, |c| c.rv - 1);
        if since < oldest_kept {
            let too_old = Some((since, oldest_kept));
            return WatchStart {
                backlog: Vec::new(),
                live,
                too_old,
            };
        }
        let backlog = inner
            .history
            .iter()
            .filter(|c| c.rv > since && std::ptr::eq(c.resource, resource))
            .filter(|c| namespace.is_none_or(|wanted| c.namespace == wanted))
            .cloned()
            .collect();
        WatchStart {
            backlog,
            live,
            too_old: None,
        }
    }
}
