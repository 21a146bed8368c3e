//! Ready-made sinks: in memory, null, and a tee.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{AuditError, AuditEvent, AuditSink};

/// Keeps every event in memory; for tests and examples.
#[derive(Debug, Default)]
pub struct MemoryAuditSink {
    events: Mutex<Vec<AuditEvent>>,
}

impl MemoryAuditSink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of the events recorded so far, in order.
    pub fn events(&self) -> Vec<AuditEvent> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[async_trait]
impl AuditSink for MemoryAuditSink {
    fn record(&self, event: AuditEvent) -> Result<(), AuditError> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(event);
        Ok(())
    }

    async fn flush(&self) -> Result<(), AuditError> {
        Ok(())
    }
}

/// Discards every event (benchmarks, and gateways that audit elsewhere).
#[derive(Clone, Copy, Debug, Default)]
pub struct NullAuditSink;

#[async_trait]
impl AuditSink for NullAuditSink {
    fn record(&self, _event: AuditEvent) -> Result<(), AuditError> {
        Ok(())
    }

    async fn flush(&self) -> Result<(), AuditError> {
        Ok(())
    }
}

/// Sends every event to several sinks. An event counts as recorded only if every sink took it; the
/// first error is returned after all sinks were tried, so one failing sink does not starve the rest.
#[derive(Clone, Default)]
pub struct TeeAuditSink {
    sinks: Vec<Arc<dyn AuditSink>>,
}

impl TeeAuditSink {
    /// A tee over `sinks`.
    pub fn new(sinks: Vec<Arc<dyn AuditSink>>) -> Self {
        Self { sinks }
    }
}

#[async_trait]
impl AuditSink for TeeAuditSink {
    fn record(&self, event: AuditEvent) -> Result<(), AuditError> {
        let mut first_error = None;
        for sink in &self.sinks {
            if let Err(e) = sink.record(event.clone()) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn flush(&self) -> Result<(), AuditError> {
        let mut first_error = None;
        for sink in &self.sinks {
            if let Err(e) = sink.flush().await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl std::fmt::Debug for TeeAuditSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TeeAuditSink")
            .field("sinks", &self.sinks.len())
            .finish()
    }
}
