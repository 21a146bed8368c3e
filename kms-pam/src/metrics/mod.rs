//! Prometheus metrics of a gateway, and the small HTTP endpoint serving them with `/healthz`
//! and `/readyz` (the relay's metrics use the same endpoint).

mod endpoint;
mod observer;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

pub use endpoint::healthcheck;
pub(crate) use endpoint::{serve, Exposition};

/// Called before each scrape to copy values kept elsewhere into a gateway's metrics.
pub(crate) type Refresh = std::sync::Arc<dyn Fn(&GatewayMetrics) + Send + Sync>;
pub(crate) use observer::Observers;
pub use observer::{GatewayObserver, NoObserver};

/// Labels of the request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// `2xx`, `4xx`, `5xx`, `1xx`.
    code: &'static str,
}

/// The gateway's counters and gauges, as a [`GatewayObserver`]. Cheap to update from the request
/// path (atomics).
#[derive(Debug)]
pub struct GatewayMetrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    bytes_in: Counter,
    bytes_out: Counter,
    active_sessions: Gauge,
    active_streams: Gauge,
    tunnels_refused: Counter,
    audit_dropped: Counter,
    spool_depth: Gauge,
    handshakes: Family<HandshakeLabels, Counter>,
}

/// Labels of the tunnel handshake counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandshakeLabels {
    /// `ok` or `failed`.
    outcome: &'static str,
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl GatewayMetrics {
    /// Fresh metrics, registered under the `kms_pam_gateway` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("kms_pam_gateway");
        let requests = Family::<RequestLabels, Counter>::default();
        let (bytes_in, bytes_out) = (Counter::default(), Counter::default());
        let (active_sessions, active_streams) = (Gauge::default(), Gauge::default());
        let (tunnels_refused, audit_dropped) = (Counter::default(), Counter::default());
        let spool_depth = Gauge::default();
        let handshakes = Family::<HandshakeLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, by status class",
            requests.clone(),
        );
        registry.register(
            "request_bytes",
            "Request body bytes from clients",
            bytes_in.clone(),
        );
        registry.register(
            "response_bytes",
            "Response bytes to clients",
            bytes_out.clone(),
        );
        registry.register(
            "active_sessions",
            "Sessions with an admitted tunnel",
            active_sessions.clone(),
        );
        registry.register(
            "active_streams",
            "Open long-running streams (watch, logs -f, exec, attach, port-forward)",
            active_streams.clone(),
        );
        registry.register(
            "tunnels_refused",
            "Tunnels refused after authentication",
            tunnels_refused.clone(),
        );
        registry.register(
            "audit_events_dropped",
            "Audit events a sink refused",
            audit_dropped.clone(),
        );
        registry.register(
            "spool_depth",
            "Audit events waiting in the spool",
            spool_depth.clone(),
        );
        registry.register(
            "tunnel_handshakes",
            "Tunnel TLS handshakes, by outcome",
            handshakes.clone(),
        );
        Self {
            registry,
            requests,
            bytes_in,
            bytes_out,
            active_sessions,
            active_streams,
            tunnels_refused,
            audit_dropped,
            spool_depth,
            handshakes,
        }
    }

    /// Brings the handshake counters up to totals kept by the transport (monotonic; called at
    /// scrape time).
    pub(crate) fn sync_handshakes(&self, ok: u64, failed: u64) {
        for (outcome, total) in [("ok", ok), ("failed", failed)] {
            let counter = self.handshakes.get_or_create(&HandshakeLabels { outcome });
            counter.inc_by(total.saturating_sub(counter.get()));
        }
    }

    /// Counts a finished request.
    fn count_request(&self, status: u16, bytes_in: u64, bytes_out: u64) {
        let code = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.requests.get_or_create(&RequestLabels { code }).inc();
        self.bytes_in.inc_by(bytes_in);
        self.bytes_out.inc_by(bytes_out);
    }

    /// Sets the spool depth.
    pub(crate) fn set_spool_depth(&self, depth: i64) {
        self.spool_depth.set(depth);
    }

    /// The open streams now.
    pub fn active_streams(&self) -> i64 {
        self.active_streams.get()
    }

    /// The admitted sessions now.
    pub fn active_sessions(&self) -> i64 {
        self.active_sessions.get()
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl GatewayObserver for GatewayMetrics {
    fn request_finished(&self, status: u16, bytes_in: u64, bytes_out: u64) {
        self.count_request(status, bytes_in, bytes_out);
    }
    fn stream_opened(&self) {
        self.active_streams.inc();
    }
    fn stream_closed(&self) {
        self.active_streams.dec();
    }
    fn session_admitted(&self) {
        self.active_sessions.inc();
    }
    fn session_released(&self) {
        self.active_sessions.dec();
    }
    fn tunnel_refused(&self) {
        self.tunnels_refused.inc();
    }
    fn audit_event_dropped(&self) {
        self.audit_dropped.inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_the_documented_series() {
        let m = GatewayMetrics::new();
        m.request_finished(200, 10, 2000);
        m.request_finished(502, 0, 120);
        m.stream_opened();
        m.session_admitted();
        let text = m.encode();
        for needle in [
            "kms_pam_gateway_requests_total{code=\"2xx\"} 1",
            "kms_pam_gateway_requests_total{code=\"5xx\"} 1",
            "kms_pam_gateway_response_bytes_total 2120",
            "kms_pam_gateway_active_streams 1",
            "kms_pam_gateway_active_sessions 1",
            "kms_pam_gateway_spool_depth 0",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }
}
