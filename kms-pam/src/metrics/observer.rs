//! What the gateway reports as it works, for whoever wants to count it: the [`GatewayObserver`]
//! trait, a no-op default and a fan-out. [`super::GatewayMetrics`] is the Prometheus observer.

use std::fmt;
use std::sync::Arc;

/// Notified by the gateway of requests, streams, sessions, refused tunnels and dropped audit
/// events. Every method has a no-op default and is called on the request path, so an
/// implementation must only update counters (atomics) and return: never block, never await.
pub trait GatewayObserver: Send + Sync + 'static {
    /// A request finished (its response body ended or was dropped).
    fn request_finished(&self, _status: u16, _bytes_in: u64, _bytes_out: u64) {}

    /// A long-running stream (watch, logs -f, exec, …) opened.
    fn stream_opened(&self) {}

    /// A stream that [`Self::stream_opened`] reported closed.
    fn stream_closed(&self) {}

    /// A session was admitted (its first tunnel arrived).
    fn session_admitted(&self) {}

    /// An admitted session stopped (ended, expired, terminated).
    fn session_released(&self) {}

    /// A tunnel was refused (unknown, stopped or foreign session).
    fn tunnel_refused(&self) {}

    /// An audit sink refused an event (it is logged too).
    fn audit_event_dropped(&self) {}
}

/// The observer of a gateway nobody watches.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoObserver;

impl GatewayObserver for NoObserver {}

/// Several observers notified in order.
#[derive(Clone, Default)]
pub(crate) struct Observers(Vec<Arc<dyn GatewayObserver>>);

impl Observers {
    pub(crate) fn push(&mut self, observer: Arc<dyn GatewayObserver>) {
        self.0.push(observer);
    }

    fn each(&self, f: impl Fn(&dyn GatewayObserver)) {
        for observer in &self.0 {
            f(&**observer);
        }
    }
}

impl fmt::Debug for Observers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Observers({})", self.0.len())
    }
}

impl GatewayObserver for Observers {
    fn request_finished(&self, status: u16, bytes_in: u64, bytes_out: u64) {
        self.each(|o| o.request_finished(status, bytes_in, bytes_out));
    }
    fn stream_opened(&self) {
        self.each(|o| o.stream_opened());
    }
    fn stream_closed(&self) {
        self.each(|o| o.stream_closed());
    }
    fn session_admitted(&self) {
        self.each(|o| o.session_admitted());
    }
    fn session_released(&self) {
        self.each(|o| o.session_released());
    }
    fn tunnel_refused(&self) {
        self.each(|o| o.tunnel_refused());
    }
    fn audit_event_dropped(&self) {
        self.each(|o| o.audit_event_dropped());
    }
}
