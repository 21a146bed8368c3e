//! Shipping spooled events to KMS: read a pending batch, upload it, acknowledge it; on failure
//! wait (exponential backoff with jitter, capped at 30 s) and try the same events again.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::Spool;
use crate::audit::write::{AuditError, AuditEvent};

/// Delivers batches of events to their final store (KMS).
///
/// `upload` returns `Ok` only once the receiver has kept every event of the batch. On `Err` the
/// same events (and perhaps more) are offered again later, so a receiver that kept some of them
/// before failing sees them twice: it must keep each event id once (the ids are idempotency
/// keys). The batch is in recording order, and a session's events in `seq` order.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait Uploader: Send + Sync + 'static {
    /// Delivers `batch`.
    async fn upload(&self, batch: &[AuditEvent]) -> Result<(), AuditError>;
}

#[async_trait]
impl<U: Uploader + ?Sized> Uploader for Arc<U> {
    async fn upload(&self, batch: &[AuditEvent]) -> Result<(), AuditError> {
        (**self).upload(batch).await
    }
}

/// How a [`SpoolShipper`] batches and retries: the defaults, changed with the `with_*` methods.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ShipperConfig {
    /// Most events per upload. Default 500.
    pub batch_size: usize,
    /// Wait after the first failure; doubled after each further one. Default 250 ms.
    pub initial_backoff: Duration,
    /// The longest wait between tries. Default 30 s.
    pub max_backoff: Duration,
}

impl Default for ShipperConfig {
    fn default() -> Self {
        Self {
            batch_size: 500,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
        }
    }
}

impl ShipperConfig {
    /// Uploads at most `batch_size` events at a time.
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// Waits `initial` after a first failed upload, doubling up to `max`.
    pub fn with_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max;
        self
    }
}

/// Moves events from a [`Spool`] to an [`Uploader`] until shut down.
#[derive(Debug)]
pub struct SpoolShipper<U> {
    spool: Spool,
    uploader: U,
    config: ShipperConfig,
}

impl<U: Uploader> SpoolShipper<U> {
    /// A shipper with the default [`ShipperConfig`].
    pub fn new(spool: Spool, uploader: U) -> Self {
        Self {
            spool,
            uploader,
            config: ShipperConfig::default(),
        }
    }

    /// Uses `config` instead.
    pub fn with_config(mut self, config: ShipperConfig) -> Self {
        self.config = config;
        self
    }

    /// Ships until `shutdown` resolves: whatever is pending at once (events an earlier process
    /// left included), then each batch as it is synced. Failures are logged and retried.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut progress = self.spool.progress();
        let mut failures = 0u32;
        loop {
            progress.borrow_and_update();
            let outcome = tokio::select! {
                outcome = self.ship_batch() => outcome,
                () = &mut shutdown => return,
            };
            let retry_in = match outcome {
                Ok(0) => None,
                Ok(_) => {
                    failures = 0;
                    continue;
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let delay = jittered(backoff(failures, &self.config));
                    tracing::warn!(error = %e, attempt = failures, retry_in = ?delay,
                        depth = self.spool.depth(), "audit upload failed; events stay spooled");
                    Some(delay)
                }
            };
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(retry_in.unwrap_or_default()), if retry_in.is_some() => {}
                changed = progress.changed(), if retry_in.is_none() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// Uploads and acknowledges one batch; the number of events shipped, 0 when none was
    /// pending.
    pub async fn ship_batch(&self) -> Result<usize, AuditError> {
        let batch = self.spool.pending(self.config.batch_size).await?;
        if batch.events.is_empty() {
            // Skipped lines and exhausted segments still move the cursor; release them.
            if batch.cursor != self.spool.acked() {
                self.spool.ack(batch.cursor).await?;
            }
            return Ok(0);
        }
        self.uploader.upload(&batch.events).await?;
        self.spool.ack(batch.cursor).await?;
        Ok(batch.events.len())
    }
}

/// `initial_backoff` doubled for each failure after the first, capped at `max_backoff`.
fn backoff(failures: u32, config: &ShipperConfig) -> Duration {
    let doublings = failures.saturating_sub(1).min(30);
    config
        .initial_backoff
        .saturating_mul(1 << doublings)
        .min(config.max_backoff)
}

/// Between half and all of `delay`, so gateways that lost KMS together do not retry together.
fn jittered(delay: Duration) -> Duration {
    // Without randomness the full delay will do: jitter only spreads retries.
    let mut random = [255u8; 1];
    let _ = crate::secret::fill_random(&mut random);
    delay.mul_f64(0.5 + f64::from(random[0]) / 510.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps_at_thirty_seconds() {
        let config = ShipperConfig::default();
        let delays: Vec<_> = (1..=10).map(|n| backoff(n, &config)).collect();
        assert_eq!(delays[0], Duration::from_millis(250));
        assert_eq!(delays[1], Duration::from_millis(500));
        assert_eq!(delays[3], Duration::from_secs(2));
        assert_eq!(delays[9], Duration::from_secs(30));
        assert_eq!(backoff(u32::MAX, &config), Duration::from_secs(30));
        for _ in 0..50 {
            let d = jittered(Duration::from_secs(10));
            assert!(
                d >= Duration::from_secs(5) && d <= Duration::from_secs(10),
                "{d:?}"
            );
        }
    }
}
