//! The per-source budget of failed authentications: a source (the peer IP address) may fail
//! [`BURST`] times, earning one more try per [`REFILL`]; beyond that its failed attempts are
//! answered late, [`STEP`] more per failure owed, up to [`MAX_DELAY`]. Only answers that are
//! already failures wait (`refusals.rs` charges them), so a valid token is never slowed, whatever
//! its source did before.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

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
