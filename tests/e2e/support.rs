//! Helpers shared by the end-to-end tests.

use std::time::{Duration, Instant};

use tokio::io::{AsyncBufRead, Lines};

/// The first nginx pod of the double.
pub(crate) fn first_pod() -> String {
    kms_pam_tests::apiserver::nginx_pod_names()
        .into_iter()
        .next()
        .expect("the double has pods")
}

/// Reads up to `n` lines within `limit`.
pub(crate) async fn read_lines<R: AsyncBufRead + Unpin>(
    lines: &mut Lines<R>,
    n: usize,
    limit: Duration,
) -> Vec<String> {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    while got.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, lines.next_line()).await {
            Ok(Ok(Some(line))) => got.push(line),
            _ => break,
        }
    }
    got
}
