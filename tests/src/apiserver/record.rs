//! What the double remembers about its traffic: every request received, and how many long-lived
//! streams are open right now.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use http::{HeaderMap, Version};

/// Bodies larger than this are counted but not kept, so a 20 MiB upload does not pin memory.
const MAX_KEPT_BODY: usize = 4 * 1024 * 1024;

/// One request as the double received it, recorded before authentication.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// HTTP method, e.g. `GET`.
    pub method: String,
    /// Request path without the query, e.g. `/api/v1/namespaces/default/pods`.
    pub path: String,
    /// Raw query string, if any.
    pub query: Option<String>,
    /// Request headers exactly as received.
    pub headers: HeaderMap,
    /// Body size: `Content-Length` when the body was not read, the bytes read otherwise.
    pub body_bytes: u64,
    /// The body, when the double read it and it was at most 4 MiB; empty otherwise.
    pub body: Bytes,
    /// The `Upgrade` header (`websocket`, `SPDY/3.1`), if any.
    pub upgrade: Option<String>,
    /// HTTP version the request arrived with (`HTTP/2.0` for kubectl's plain requests).
    pub version: Version,
}

impl RecordedRequest {
    /// The value of header `name` as text, if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Whether the query string contains `key=value` (exact, undecoded match).
    pub fn has_query_pair(&self, key: &str, value: &str) -> bool {
        let wanted = format!("{key}={value}");
        self.query
            .as_deref()
            .is_some_and(|q| q.split('&').any(|pair| pair == wanted))
    }
}

/// Append-only log of requests, shared by all connections.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    requests: Mutex<Vec<RecordedRequest>>,
}

impl Recorder {
    /// Stores `request` and returns its index, for [`Recorder::set_body`] later.
    pub(crate) fn record<B>(&self, request: &http::Request<B>) -> usize {
        let headers = request.headers().clone();
        let body_bytes = headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let upgrade = headers
            .get(http::header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let entry = RecordedRequest {
            method: request.method().as_str().to_owned(),
            path: request.uri().path().to_owned(),
            query: request.uri().query().map(str::to_owned),
            headers,
            body_bytes,
            body: Bytes::new(),
            upgrade,
            version: request.version(),
        };
        let mut requests = self.lock();
        requests.push(entry);
        requests.len() - 1
    }

    /// Fills in the body of request `index` once the handler has read it.
    pub(crate) fn set_body(&self, index: usize, body: &Bytes) {
        if let Some(entry) = self.lock().get_mut(index) {
            entry.body_bytes = body.len() as u64;
            if body.len() <= MAX_KEPT_BODY {
                entry.body = body.clone();
            }
        }
    }

    pub(crate) fn snapshot(&self) -> Vec<RecordedRequest> {
        self.lock().clone()
    }

    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> MutexGuard<'_, Vec<RecordedRequest>> {
        // A panicking test thread must not take the recorder down with it.
        self.requests.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Counts open streams; each stream holds a [`StreamGuard`] for as long as it lives.
#[derive(Debug, Clone, Default)]
pub(crate) struct StreamCounter(Arc<AtomicUsize>);

impl StreamCounter {
    pub(crate) fn enter(&self) -> StreamGuard {
        self.0.fetch_add(1, Ordering::SeqCst);
        StreamGuard(self.0.clone())
    }

    pub(crate) fn current(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// Decrements its [`StreamCounter`] when dropped, i.e. when the stream really ended.
#[derive(Debug)]
pub(crate) struct StreamGuard(Arc<AtomicUsize>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_content_length_then_real_body() {
        let recorder = Recorder::default();
        let request = http::Request::post("/api/v1/namespaces/default/configmaps?dryRun=All")
            .header("content-length", "3")
            .header("upgrade", "websocket")
            .body(())
            .unwrap();
        let index = recorder.record(&request);
        let first = &recorder.snapshot()[0];
        assert_eq!(first.body_bytes, 3);
        assert_eq!(first.upgrade.as_deref(), Some("websocket"));
        assert!(first.has_query_pair("dryRun", "All"));
        recorder.set_body(index, &Bytes::from_static(b"hello"));
        assert_eq!(recorder.snapshot()[0].body_bytes, 5);
        assert_eq!(&recorder.snapshot()[0].body[..], b"hello");
        recorder.clear();
        assert!(recorder.snapshot().is_empty());
    }

    #[test]
    fn guards_count_open_streams() {
        let counter = StreamCounter::default();
        let a = counter.enter();
        let b = counter.enter();
        assert_eq!(counter.current(), 2);
        drop(a);
        assert_eq!(counter.current(), 1);
        drop(b);
        assert_eq!(counter.current(), 0);
    }
}
