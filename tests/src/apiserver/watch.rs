//! Watches: newline-delimited JSON events over a chunked body that lives as long as the client
//! reads it, plus the pod "heartbeat" that keeps pod watches busy.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http::{Response, StatusCode};
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::catalog::{self, Resource};
use super::record::StreamGuard;
use super::request::{Output, Query};
use super::response::{response, streaming, ApiError, Body};
use super::router::Target;
use super::selector::Filter;
use super::store::{Change, EventType, Stored};
use super::table::table;
use super::State;

/// One open watch; dropping it (client gone, timeout, shutdown) releases its guards.
struct Watch {
    resource: &'static Resource,
    namespace: Option<String>,
    filter: Filter,
    output: Output,
    backlog: VecDeque<Change>,
    live: tokio::sync::broadcast::Receiver<Change>,
    deadline: Option<Instant>,
    cancel: CancellationToken,
    /// An `ERROR` event still to send before the stream ends.
    error: Option<(u64, u64)>,
    first: bool,
    finished: bool,
    _guards: Vec<StreamGuard>,
}

pub(crate) fn serve(
    state: &Arc<State>,
    target: &Target,
    filter: Filter,
    query: &Query,
    output: Output,
) -> Result<Response<Body>, ApiError> {
    let since = match query.get("resourceVersion") {
        None | Some("" | "0") => None,
        Some(rv) => Some(
            rv.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv}")))?,
        ),
    };
    let timeout = query.number("timeoutSeconds")?.filter(|s| *s > 0);
    let start = state
        .store
        .watch(target.resource, target.namespace.as_deref(), since);
    let mut guards = vec![state.streams.enter()];
    if target.resource.is("", "pods") {
        guards.push(state.pod_watchers.enter());
    }
    let watch = Watch {
        resource: target.resource,
        namespace: target.namespace.clone(),
        filter,
        output,
        backlog: start.backlog.into(),
        live: start.live,
        deadline: timeout.map(|s| Instant::now() + Duration::from_secs(s.unsigned_abs())),
        cancel: state.cancel.clone(),
        error: start.too_old,
        first: true,
        finished: false,
        _guards: guards,
    };
    let content_type = match output {
        Output::Json => "application/json".to_owned(),
        Output::Table(request) => request.content_type(),
    };
    let events = stream::unfold(watch, |mut watch| async move {
        let event = watch.next_event().await?;
        Some((event, watch))
    });
    Ok(response(StatusCode::OK, &content_type, streaming(events)))
}

impl Watch {
    async fn next_event(&mut self) -> Option<Bytes> {
        if self.finished {
            return None;
        }
        if let Some((requested, oldest)) = self.error.take() {
            self.finished = true;
            return Some(expired(requested, oldest));
        }
        loop {
            let change = match self.backlog.pop_front() {
                Some(change) => change,
                None => match self.next_live().await {
                    Some(change) => change,
                    None => {
                        self.finished = true;
                        return self
                            .error
                            .take()
                            .map(|(requested, oldest)| expired(requested, oldest));
                    }
                },
            };
            if let Some((event, object)) = self.classify(&change) {
                return Some(self.encode(event, &object, change.rv));
            }
        }
    }

    async fn next_live(&mut self) -> Option<Change> {
        let deadline = self.deadline;
        let timeout = async move {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = self.cancel.cancelled() => None,
            () = timeout => None,
            received = self.live.recv() => match received {
                Ok(change) => Some(change),
                Err(RecvError::Lagged(_)) => {
                    // The client fell too far behind; a real server ends such a watch with 410.
                    self.error = Some((0, 0));
                    None
                }
                Err(RecvError::Closed) => None,
            },
        }
    }

    /// The event this watch reports for `change`, given its scope and selectors: an object
    /// that starts or stops matching is ADDED or DELETED, as on a real server.
    fn classify(&self, change: &Change) -> Option<(EventType, Stored)> {
        let in_scope = std::ptr::eq(change.resource, self.resource)
            && self
                .namespace
                .as_deref()
                .is_none_or(|ns| ns == change.namespace);
        if !in_scope {
            return None;
        }
        let now = self.filter.matches(&change.current.object);
        let before = change
            .previous
            .as_deref()
            .is_some_and(|p| self.filter.matches(p));
        let event = match (change.event, before, now) {
            (EventType::Added, _, true) => EventType::Added,
            (EventType::Deleted, true, _) | (EventType::Deleted, _, true) => EventType::Deleted,
            (EventType::Modified, true, true) => EventType::Modified,
            (EventType::Modified, false, true) => EventType::Added,
            (EventType::Modified, true, false) => EventType::Deleted,
            _ => return None,
        };
        Some((event, change.current.clone()))
    }

    fn encode(&mut self, event: EventType, object: &Stored, rv: u64) -> Bytes {
        let object_json = match self.output {
            Output::Json => object.json.clone(),
            Output::Table(request) => {
                let meta = json!({"resourceVersion": rv.to_string()});
                let value = table(
                    self.resource,
                    std::slice::from_ref(object),
                    meta,
                    request,
                    self.first,
                );
                Bytes::from(serde_json::to_vec(&value).unwrap_or_default())
            }
        };
        self.first = false;
        let mut line = Vec::with_capacity(object_json.len() + 40);
        line.extend_from_slice(format!("{{\"type\":\"{}\",\"object\":", event.as_str()).as_bytes());
        line.extend_from_slice(&object_json);
        line.extend_from_slice(b"}\n");
        Bytes::from(line)
    }
}

fn expired(requested: u64, oldest: u64) -> Bytes {
    let message = if requested == 0 {
        "the watch fell behind and was closed; restart it".to_owned()
    } else {
        format!("too old resource version: {requested} ({oldest})")
    };
    let status = json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": "Expired", "code": 410}});
    let mut line = serde_json::to_vec(&status).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

/// Bumps a pod's resourceVersion so pod watches see MODIFIED.
pub(crate) fn touch_pod(state: &State, namespace: &str, name: &str) {
    let Some(pods) = catalog::find("", "v1", "pods") else {
        return;
    };
    if let Err(error) = state
        .store
        .update(pods, namespace, name, false, |pod| Ok(pod.clone()))
    {
        tracing::debug!(%error, "api server double: no pod to emit an event for");
    }
}

/// Every `period`, while pod watches are open, touches the next pod in turn.
pub(crate) async fn tick_pods(state: Arc<State>, period: Duration) {
    let Some(pods) = catalog::find("", "v1", "pods") else {
        return;
    };
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut turn = 0usize;
    loop {
        tokio::select! {
            () = state.cancel.cancelled() => return,
            _ = interval.tick() => {}
        }
        if state.pod_watchers.current() == 0 {
            continue;
        }
        let (items, _) = state.store.list(pods, None);
        if items.is_empty() {
            continue;
        }
        let pod = &items[turn % items.len()];
        turn = turn.wrapping_add(1);
        let namespace = pod.object["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        touch_pod(&state, &namespace, pod.name());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::store::Store;
    use serde_json::Value;

    fn watch_with(filter: &str) -> Watch {
        let pods = catalog::find("", "v1", "pods").unwrap();
        let start = Store::new().watch(pods, Some("default"), None);
        Watch {
            resource: pods,
            namespace: Some("default".into()),
            filter: Filter::parse("pods", Some(filter), None).unwrap(),
            output: Output::Json,
            backlog: VecDeque::new(),
            live: start.live,
            deadline: None,
            cancel: CancellationToken::new(),
            error: None,
            first: true,
            finished: false,
            _guards: Vec::new(),
        }
    }

    fn change(event: EventType, before: Option<&str>, after: &str) -> Change {
        let pod = |app: &str| json!({"metadata": {"name": "p", "namespace": "default", "labels": {"app": app}}});
        Change {
            event,
            resource: catalog::find("", "v1", "pods").unwrap(),
            namespace: "default".into(),
            rv: 7,
            current: Stored {
                json: Bytes::from_static(b"{}"),
                object: Arc::new(pod(after)),
            },
            previous: before.map(|app| Arc::new(pod(app))),
        }
    }

    #[test]
    fn selector_watches_see_objects_enter_and_leave() {
        let watch = watch_with("app=web");
        let kind = |c: Change| watch.classify(&c).map(|(event, _)| event);
        assert_eq!(
            kind(change(EventType::Modified, Some("web"), "web")),
            Some(EventType::Modified)
        );
        assert_eq!(
            kind(change(EventType::Modified, Some("db"), "web")),
            Some(EventType::Added)
        );
        assert_eq!(
            kind(change(EventType::Modified, Some("web"), "db")),
            Some(EventType::Deleted)
        );
        assert_eq!(kind(change(EventType::Modified, Some("db"), "db")), None);
        assert_eq!(kind(change(EventType::Added, None, "db")), None);
        let mut other_namespace = change(EventType::Added, None, "web");
        other_namespace.namespace = "kube-system".into();
        assert_eq!(kind(other_namespace), None);
    }

    #[tokio::test]
    async fn events_are_newline_delimited_json() {
        let mut watch = watch_with("");
        let line = watch.encode(
            EventType::Added,
            &change(EventType::Added, None, "web").current,
            7,
        );
        assert_eq!(&line[..], b"{\"type\":\"ADDED\",\"object\":{}}\n");
        let expired: Value = serde_json::from_slice(&expired(3, 9)).unwrap();
        assert_eq!(expired["object"]["code"], 410);
    }
}
