//! Property tests of every parser that takes outside bytes (issue 15, "fuzzing"): the request
//! classifier, kubeconfig reading and merging, the spool segment reader, the WebSocket frame
//! demultiplexer, the KMS API's JSON bodies and CSR parsing. They go through public APIs only.
//!
//! Each target runs [`CI_CASES`] generated cases in `cargo test` (override with
//! `PROPTEST_CASES`). For a long run, `KMS_PAM_FUZZ_SECS=600` repeats a target with fresh random
//! seeds until that many seconds have passed and prints how many cases it ran, e.g.
//!
//! ```text
//! KMS_PAM_FUZZ_SECS=600 nice -n 19 cargo test -p kms-pam --release --lib proptests::frames -- --nocapture
//! ```
//!
//! Whatever a long run finds is fixed and kept as an ordinary unit test next to the code.

mod api;
mod classifier;
mod csr;
mod frames;
mod kubeconfig;
mod spool;

use std::fmt::Debug;
use std::time::{Duration, Instant};

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// Cases per target in an ordinary test run: enough to catch regressions, cheap in CI.
const CI_CASES: u32 = 256;

/// Runs `test` on values of `strategy`: [`CI_CASES`] of them, or as many as fit in
/// `KMS_PAM_FUZZ_SECS` seconds. Panics with the shrunk failing input.
pub(crate) fn check<S>(
    name: &str,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S: Strategy,
    S::Value: Debug,
{
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(CI_CASES);
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let budget = std::env::var("KMS_PAM_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map(Duration::from_secs);
    let started = Instant::now();
    let mut total = 0u64;
    loop {
        let mut runner = TestRunner::new(config.clone());
        if let Err(failure) = runner.run(&strategy, &test) {
            panic!("{name}: {failure}");
        }
        total += u64::from(config.cases);
        match budget {
            Some(budget) if started.elapsed() < budget => {}
            _ => break,
        }
    }
    if budget.is_some() {
        eprintln!(
            "{name}: {total} cases in {:.0} s, no failure",
            started.elapsed().as_secs_f64()
        );
    }
}
