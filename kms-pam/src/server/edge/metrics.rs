//! The KMS's Prometheus counters (served by `GET /metrics`, `api/health.rs`): refused requests,
//! delayed failures, ended sessions.

use http::StatusCode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::session::EndCause;

/// Labels of refused authentications.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    /// `401` or `403`.
    status: u16,
    /// The route template (`/v1/projects/{project}/resources`), `unmatched` for unknown paths.
    route: String,
}

/// Labels of ended sessions.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CauseLabels {
    /// The end cause (`abandoned`, `user_disabled`, …).
    cause: &'static str,
}

/// The KMS's counters, registered under the `kms_pam_kms` prefix. Updates are atomics.
pub(crate) struct KmsMetrics {
    registry: Registry,
    refusals: Family<RefusalLabels, Counter>,
    delayed: Counter,
    sessions_ended: Family<CauseLabels, Counter>,
}

impl std::fmt::Debug for KmsMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsMetrics").finish_non_exhaustive()
    }
}

impl KmsMetrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("kms_pam_kms");
        let refusals = Family::<RefusalLabels, Counter>::default();
        let delayed = Counter::default();
        let sessions_ended = Family::<CauseLabels, Counter>::default();
        registry.register(
            "auth_refusals",
            "Requests answered 401 (not authenticated) or 403 (not allowed), by route",
            refusals.clone(),
        );
        registry.register(
            "auth_delayed",
            "Failed authentications answered late because their source exceeded its budget",
            delayed.clone(),
        );
        registry.register(
            "sessions_ended",
            "Sessions ended by revocation, abandonment or an administrator, by cause",
            sessions_ended.clone(),
        );
        Self {
            registry,
            refusals,
            delayed,
            sessions_ended,
        }
    }

    /// Counts one 401 or 403 answer on `route`.
    pub(crate) fn refused(&self, status: StatusCode, route: &str) {
        self.refusals
            .get_or_create(&RefusalLabels {
                status: status.as_u16(),
                route: route.to_owned(),
            })
            .inc();
    }

    /// Counts one failed authentication answered late.
    pub(crate) fn delayed(&self) {
        self.delayed.inc();
    }

    /// Counts one session ended for `cause`.
    pub(crate) fn session_ended(&self, cause: EndCause) {
        self.sessions_ended
            .get_or_create(&CauseLabels {
                cause: cause.as_str(),
            })
            .inc();
    }

    /// The OpenMetrics text exposition.
    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_has_the_documented_series() {
        let metrics = KmsMetrics::new();
        metrics.refused(StatusCode::UNAUTHORIZED, "/v1/whoami");
        metrics.refused(StatusCode::UNAUTHORIZED, "/v1/whoami");
        metrics.delayed();
        metrics.session_ended(EndCause::Abandoned);
        let text = metrics.encode();
        assert!(
            text.contains(r#"kms_pam_kms_auth_refusals_total{status="401",route="/v1/whoami"} 2"#),
            "{text}"
        );
        assert!(text.contains("kms_pam_kms_auth_delayed_total 1"), "{text}");
        assert!(
            text.contains(r#"kms_pam_kms_sessions_ended_total{cause="abandoned"} 1"#),
            "{text}"
        );
    }
}
