//! Refused requests are visible: every 401 and 403 answer is logged (who, route, source
//! address; never a token) and counted in `/metrics`, in this one middleware.
//!
//! Failed authentications also cost their source (the peer IP address) from a small budget
//! ([`FailureBudget`]): a source may fail [`BURST`] times, earning one more try per
//! [`REFILL`]; beyond that its failed attempts are answered late, [`STEP`] more per failure
//! owed, up to [`MAX_DELAY`]. Only answers that are already failures wait, so a valid token is
//! never slowed, whatever its source did before. Requests without any credential are logged and
//! counted but cost nothing: they guess nothing.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::request::Parts;
use http::StatusCode;
use tokio::time::Instant;

use super::state::AppState;

/// Failures a source may make before its answers slow down.
pub(crate) const BURST: f64 = 10.0;
/// How long a source waits to earn one more failure.
pub(crate) const REFILL: Duration = Duration::from_secs(1);
/// Extra delay per failure owed beyond the burst.
pub(crate) const STEP: Duration = Duration::from_millis(250);
/// The longest a failed answer is held.
pub(crate) const MAX_DELAY: Duration = Duration::from_secs(5);
/// Sources tracked at most; the fully refilled ones are forgotten first.
const MAX_SOURCES: usize = 10_000;

/// Who a request turned out to be, filled in by the authentication extractor so the middleware
/// can log it: `user alice`, `gateway gw-1`, `unknown user token`. Empty when no credential was
/// presented.
#[derive(Clone, Debug, Default)]
pub(crate) struct CallerSlot(Arc<Mutex<Option<String>>>);

impl CallerSlot {
    /// Records who presented the credential.
    pub(crate) fn set(&self, who: impl Into<String>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(who.into());
    }

    fn get(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Records who is calling in the request's [`CallerSlot`], if the middleware put one there.
pub(crate) fn record_caller(extensions: &http::Extensions, who: impl Into<String>) {
    if let Some(slot) = extensions.get::<CallerSlot>() {
        slot.set(who);
    }
}

/// A handler's handle on the request's [`CallerSlot`], for credentials checked outside the
/// authentication extractors (enrollment tokens).
#[derive(Debug, Clone)]
pub(crate) struct Attempt(Option<CallerSlot>);

impl Attempt {
    /// Records who presented the credential.
    pub(crate) fn record(&self, who: impl Into<String>) {
        if let Some(slot) = &self.0 {
            slot.set(who);
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Attempt {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(Self(parts.extensions.get::<CallerSlot>().cloned()))
    }
}

/// The middleware: logs and counts 401 and 403 answers, and holds failed authentications of a
/// source over its budget.
pub(crate) async fn watch_refusals(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let source = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().clone();
    let slot = CallerSlot::default();
    request.extensions_mut().insert(slot.clone());
    let response = next.run(request).await;
    let status = response.status();
    if status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN {
        return response;
    }
    let who = slot.get();
    let shown_source = source.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
    tracing::warn!(
        status = status.as_u16(),
        %method,
        %route,
        source = %shown_source,
        who = who.as_deref().unwrap_or("anonymous (no credential)"),
        "request refused"
    );
    state.metrics.refused(status, &route);
    if status == StatusCode::UNAUTHORIZED && who.is_some() {
        if let Some(ip) = source {
            let delay = state.failures.charge(ip, Instant::now());
            if !delay.is_zero() {
                state.metrics.delayed();
                tokio::time::sleep(delay).await;
            }
        }
    }
    response
}

/// Per-source token buckets of failed authentications.
#[derive(Debug, Default)]
pub(crate) struct FailureBudget {
    sources: Mutex<HashMap<IpAddr, Bucket>>,
}

/// What a source has left: `credit` failures (may go negative: failures owed), as of `at`.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    credit: f64,
    at: Instant,
}

impl Bucket {
    fn refilled(self, now: Instant) -> f64 {
        let earned = now.saturating_duration_since(self.at).as_secs_f64() / REFILL.as_secs_f64();
        (self.credit + earned).min(BURST)
    }
}

impl FailureBudget {
    /// Charges one failure to `source` at `now`; returns how long to hold its answer.
    pub(crate) fn charge(&self, source: IpAddr, now: Instant) -> Duration {
        let mut sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        if sources.len() >= MAX_SOURCES && !sources.contains_key(&source) {
            sources.retain(|_, bucket| bucket.refilled(now) < BURST);
            if sources.len() >= MAX_SOURCES {
                // Under a spray from very many sources, start over rather than grow.
                sources.clear();
            }
        }
        let bucket = sources.entry(source).or_insert(Bucket {
            credit: BURST,
            at: now,
        });
        let credit = bucket.refilled(now) - 1.0;
        *bucket = Bucket { credit, at: now };
        if credit >= 0.0 {
            return Duration::ZERO;
        }
        let owed = (-credit).ceil();
        STEP.mul_f64(owed).min(MAX_DELAY)
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_source_over_its_budget_waits_longer_and_recovers() {
        let budget = FailureBudget::default();
        let (a, b) = (
            IpAddr::from(Ipv4Addr::new(10, 0, 0, 1)),
            IpAddr::from(Ipv4Addr::new(10, 0, 0, 2)),
        );
        let start = Instant::now();
        for _ in 0..10 {
            assert_eq!(budget.charge(a, start), Duration::ZERO);
        }
        assert_eq!(budget.charge(a, start), STEP);
        assert_eq!(budget.charge(a, start), STEP * 2);
        for _ in 0..30 {
            budget.charge(a, start);
        }
        assert_eq!(budget.charge(a, start), MAX_DELAY, "capped");
        assert_eq!(budget.charge(b, start), Duration::ZERO, "per source");
        // A minute later the debt (33 failures) is paid off and the source may fail again.
        let later = start + Duration::from_secs(60);
        assert_eq!(budget.charge(a, later), Duration::ZERO);
    }
}
