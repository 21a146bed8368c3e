//! The audit tap: counts bytes each way and reports a request's end exactly once, when its last
//! piece (request body, response body, upgraded stream) is dropped.

use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::in_flight::InFlightGuard;
use super::recorder::{self, RecorderTask, RecordingTap};
use crate::audit::recording::{RecordingConfig, UnrecordedStreams};
use crate::audit::{
    AuditEvent, AuditEventKind, AuditSink, RequestFinished, StreamClosed, StreamDetails,
};
use crate::kube::StreamKind;
use crate::metrics::GatewayObserver;
use crate::session::SessionId;

/// One request's running totals. Shared (`Arc`) by the body wrappers; `Drop` emits the
/// `RequestFinished` (and `StreamClosed`) events.
pub(crate) struct RequestTap {
    sink: Arc<dyn AuditSink>,
    metrics: Arc<dyn GatewayObserver>,
    session_id: SessionId,
    request_id: u64,
    started: Instant,
    stream: Option<StreamKind>,
    stream_opened: std::sync::atomic::AtomicBool,
    status: AtomicU16,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    error: Mutex<Option<String>>,
    /// Keeps the session's end, and the gateway's final audit flush at shutdown, from coming
    /// before this request's end.
    in_flight: Vec<InFlightGuard>,
}

impl RequestTap {
    /// A tap for a request that has just arrived.
    pub(crate) fn new(
        sink: Arc<dyn AuditSink>,
        metrics: Arc<dyn GatewayObserver>,
        session_id: SessionId,
        request_id: u64,
        stream: Option<StreamKind>,
    ) -> Arc<Self> {
        Arc::new(Self {
            sink,
            metrics,
            session_id,
            request_id,
            started: Instant::now(),
            stream,
            stream_opened: Default::default(),
            status: AtomicU16::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            error: Mutex::new(None),
            in_flight: Vec::new(),
        })
    }

    /// Counts this request as unfinished work (of its session, of the gateway) until its end is
    /// recorded.
    pub(crate) fn with_in_flight(self: Arc<Self>, guard: InFlightGuard) -> Arc<Self> {
        match Arc::try_unwrap(self) {
            Ok(mut tap) => {
                tap.in_flight.push(guard);
                Arc::new(tap)
            }
            Err(shared) => shared,
        }
    }

    /// The request id.
    pub(crate) fn request_id(&self) -> u64 {
        self.request_id
    }

    /// Records an event of this request's session.
    pub(crate) fn emit(&self, kind: AuditEventKind) {
        let _recorded = emit(
            &*self.sink,
            &*self.metrics,
            &self.session_id,
            self.request_id,
            kind,
        );
    }

    /// Records what an upgraded stream is and, for exec/attach over WebSocket, starts recording
    /// its bytes: the returned tap goes to the splice. The recorder does not hold this tap, so
    /// `StreamClosed` is not delayed by it; its last `StreamData` and `RecordingEnded` may follow.
    /// `unrecorded` (the resource's policy) says whether a stream that can no longer be recorded
    /// is ended or goes on.
    pub(crate) fn start_recording(
        &self,
        details: StreamDetails,
        config: &RecordingConfig,
        unrecorded: UnrecordedStreams,
    ) -> Option<(RecordingTap, RecorderTask)> {
        let (sink, metrics) = (self.sink.clone(), self.metrics.clone());
        let (session_id, request_id) = (self.session_id.clone(), self.request_id);
        // The recorder may write after the request's end; it holds the session's end (and the
        // gateway's final flush) back too.
        let guards: Vec<_> = self.in_flight.iter().map(InFlightGuard::another).collect();
        let emit_event = move |kind| {
            let _keep = &guards;
            emit(&*sink, &*metrics, &session_id, request_id, kind)
        };
        recorder::start(details, config, unrecorded, Box::new(emit_event))
    }

    /// Records the status sent to the client; a long-running stream counts as opened when its
    /// response headers succeed.
    pub(crate) fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::Relaxed);
        if let Some(stream) = self.stream {
            if (200..300).contains(&status) || status == 101 {
                self.stream_opened.store(true, Ordering::Relaxed);
                self.metrics.stream_opened();
                self.emit(AuditEventKind::StreamOpened {
                    request_id: self.request_id,
                    stream,
                });
            }
        }
    }

    /// Records why the request failed or was cut (the first reason wins).
    pub(crate) fn set_error(&self, error: impl Into<String>) {
        let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
        slot.get_or_insert_with(|| error.into());
    }

    /// Counts bytes received from the client.
    pub(crate) fn add_in(&self, n: usize) {
        self.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Counts bytes sent to the client.
    pub(crate) fn add_out(&self, n: usize) {
        self.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Records an event; a refusal is counted and logged, never silent.
fn emit(
    sink: &dyn AuditSink,
    metrics: &dyn GatewayObserver,
    session_id: &SessionId,
    request_id: u64,
    kind: AuditEventKind,
) -> bool {
    match sink.record(AuditEvent::now(session_id.clone(), kind)) {
        Ok(()) => true,
        Err(e) => {
            metrics.audit_event_dropped();
            tracing::error!(session = %session_id, request = request_id, error = %e,
                "audit event not recorded");
            false
        }
    }
}

impl Drop for RequestTap {
    fn drop(&mut self) {
        let duration_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let error = self
            .error
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let (bytes_in, bytes_out) = (*self.bytes_in.get_mut(), *self.bytes_out.get_mut());
        if let (Some(stream), true) = (self.stream, *self.stream_opened.get_mut()) {
            self.metrics.stream_closed();
            self.emit(AuditEventKind::StreamClosed(StreamClosed {
                request_id: self.request_id,
                stream,
                bytes_in,
                bytes_out,
                duration_ms,
                reason: error.clone(),
            }));
        }
        let status = *self.status.get_mut();
        self.metrics.request_finished(status, bytes_in, bytes_out);
        self.emit(AuditEventKind::RequestFinished(RequestFinished {
            request_id: self.request_id,
            status,
            bytes_in,
            bytes_out,
            duration_ms,
            error,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditError, MockAuditSink};
    use crate::metrics::GatewayMetrics;

    #[test]
    fn a_refusing_sink_is_counted_never_silent() {
        let mut sink = MockAuditSink::new();
        sink.expect_record()
            .times(2)
            .returning(|_| Err(AuditError::full("spool full")));
        let metrics = Arc::new(GatewayMetrics::new());
        let tap = RequestTap::new(
            Arc::new(sink),
            metrics.clone(),
            SessionId::new("s"),
            7,
            None,
        );
        tap.emit(AuditEventKind::SessionEnded {
            status: crate::session::SessionStatus::Ended,
            ended_at: None,
            end_cause: None,
        });
        drop(tap); // RequestFinished, refused too
        assert!(
            metrics
                .encode()
                .contains("kms_pam_gateway_audit_events_dropped_total 2"),
            "{}",
            metrics.encode()
        );
    }

    #[test]
    fn finished_carries_status_bytes_and_the_first_error() {
        let mut sink = MockAuditSink::new();
        sink.expect_record()
            .withf(|e| {
                matches!(&e.kind, AuditEventKind::RequestFinished(f)
                    if f.status == 502 && f.bytes_in == 3 && f.bytes_out == 10
                        && f.error.as_deref() == Some("first"))
            })
            .times(1)
            .returning(|_| Ok(()));
        let tap = RequestTap::new(
            Arc::new(sink),
            Arc::new(GatewayMetrics::new()),
            SessionId::new("s"),
            1,
            None,
        );
        tap.set_status(502);
        tap.add_in(3);
        tap.add_out(10);
        tap.set_error("first");
        tap.set_error("second");
    }
}
