//! A relay's Prometheus metrics: tunnels, streams, bytes and refusals.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    /// `to_gateway` or `to_client`.
    direction: &'static str,
}

/// The relay's metrics, registered under the `kms_pam_relay` prefix.
pub(crate) struct RelayMetrics {
    registry: Registry,
    tunnels: Gauge,
    streams: Gauge,
    streams_total: Counter,
    bytes: Family<DirectionLabels, Counter>,
    refusals: Family<ReasonLabels, Counter>,
}

impl RelayMetrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("kms_pam_relay");
        let (tunnels, streams) = (Gauge::default(), Gauge::default());
        let streams_total = Counter::default();
        let bytes = Family::<DirectionLabels, Counter>::default();
        let refusals = Family::<ReasonLabels, Counter>::default();
        registry.register("tunnels", "Gateways holding a tunnel here", tunnels.clone());
        registry.register("open_streams", "Relayed streams open now", streams.clone());
        registry.register("streams", "Relayed streams opened", streams_total.clone());
        registry.register(
            "bytes",
            "Ciphertext bytes relayed (at stream end)",
            bytes.clone(),
        );
        registry.register(
            "refusals",
            "Connections refused, by reason (handshake or the status code sent)",
            refusals.clone(),
        );
        Self {
            registry,
            tunnels,
            streams,
            streams_total,
            bytes,
            refusals,
        }
    }

    pub(crate) fn set_tunnels(&self, n: usize) {
        self.tunnels.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    pub(crate) fn stream_opened(&self) {
        self.streams.inc();
        self.streams_total.inc();
    }

    pub(crate) fn stream_closed(&self) {
        self.streams.dec();
    }

    pub(crate) fn add_bytes(&self, to_gateway: u64, to_client: u64) {
        let labels = |direction| DirectionLabels { direction };
        self.bytes
            .get_or_create(&labels("to_gateway"))
            .inc_by(to_gateway);
        self.bytes
            .get_or_create(&labels("to_client"))
            .inc_by(to_client);
    }

    pub(crate) fn refused(&self, reason: &'static str) {
        self.refusals.get_or_create(&ReasonLabels { reason }).inc();
    }

    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
