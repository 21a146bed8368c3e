//! Stopping a gateway with many watches open, or an exec: every request's last audit events
//! (`StreamClosed`, `RequestFinished`, and an exec's `RecordingEnded`) are written before the
//! gateway's final flush, none after it.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, StatusCode};
use http_body_util::Empty;
use kms_pam::audit::{AuditError, AuditEvent, AuditEventKind, AuditSink};
use kms_pam::credential::{MemoryCredentialStore, Upstream};
use kms_pam::gateway::{self, GatewayConfig};
use kms_pam::proxy::LocalProxy;
use kms_pam::session::{MemorySessionManager, NewSession};
use kms_pam::tls::UpstreamTls;
use kms_pam::transport::memory::memory_gateway;
use kms_pam::Secret;
use kms_pam_tests::apiserver::{open_websocket, ApiServerDouble, DoubleConfig};
use kms_pam_tests::harness::{InProcessPath, PathOptions};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::support::first_pod;

/// Watches open when the gateway stops: more than a tunnel's connection drain lets end by itself,
/// fewer than the double's HTTP/2 stream limit (hyper's default of 200) so the gateway reaches it
/// over one upstream connection.
const WATCHES: usize = 150;

/// Keeps events in memory and notes how many there were at the last flush: an event recorded
/// after the gateway's final flush would be lost by a sink that writes on the runtime.
#[derive(Default)]
struct FlushWitness {
    events: Mutex<Vec<AuditEvent>>,
    at_last_flush: Mutex<Option<usize>>,
    /// Takes its time over a recording's end, as a sink writing to disk may: a gateway that
    /// did not wait for the recorder would flush first.
    slow_recording_end: bool,
}

#[async_trait]
impl AuditSink for FlushWitness {
    fn record(&self, event: AuditEvent) -> Result<(), AuditError> {
        if self.slow_recording_end && matches!(event.kind, AuditEventKind::RecordingEnded(_)) {
            std::thread::sleep(Duration::from_millis(200));
        }
        self.events.lock().unwrap().push(event);
        Ok(())
    }

    async fn flush(&self) -> Result<(), AuditError> {
        let recorded = self.events.lock().unwrap().len();
        *self.at_last_flush.lock().unwrap() = Some(recorded);
        Ok(())
    }
}

// Several workers, as the gateway binary runs: hyper's per-stream tasks then run alongside the
// gateway's own shutdown instead of before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stopping_the_gateway_writes_every_open_watchs_end_before_the_final_flush() {
    let double = ApiServerDouble::start(DoubleConfig {
        watch_tick: None,
        ..DoubleConfig::default()
    })
    .await
    .unwrap();
    let credentials = MemoryCredentialStore::new();
    let upstream = Upstream::new(
        double.url().parse().unwrap(),
        UpstreamTls::CaBundle(double.ca_pem().to_owned()),
    );
    credentials.add_resource("double", upstream);
    credentials.add_account("double", "admin", Secret::new(double.token()));
    let sessions = Arc::new(MemorySessionManager::new());
    let session = sessions
        .create(NewSession::new(
            "alice",
            "double",
            "admin",
            "gw",
            Duration::from_secs(600),
        ))
        .await
        .unwrap();
    let audit = Arc::new(FlushWitness::default());
    let config = GatewayConfig::new("gw", sessions, Arc::new(credentials), audit.clone());
    let (dial, acceptor) = memory_gateway();
    let stop = CancellationToken::new();
    let served = tokio::spawn(gateway::serve(
        acceptor,
        config,
        stop.clone().cancelled_owned(),
    ));

    let local = Arc::new(LocalProxy::new(
        Secret::new("local-token"),
        Arc::new(dial.connector(session.id)),
    ));
    let mut opening = tokio::task::JoinSet::new();
    for _ in 0..WATCHES {
        let local = local.clone();
        opening.spawn(async move {
            let watch = Request::get("/api/v1/namespaces/default/pods?watch=1")
                .header("authorization", "Bearer local-token")
                .header("kubectl-command", "kubectl get")
                .body(Empty::<Bytes>::new())
                .unwrap();
            local.handle(watch).await
        });
    }
    // The bodies are held, unread, until the gateway has stopped: the watches stay open.
    let mut open = Vec::new();
    while let Some(response) = opening.join_next().await {
        let response = response.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        open.push(response);
    }
    assert_eq!(
        double.open_streams(),
        WATCHES,
        "every watch reached the API"
    );

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(30), served)
        .await
        .expect("the gateway stops within its drain bounds")
        .unwrap()
        .unwrap();
    // Whatever would still be written late gets its chance now.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let events = audit.events.lock().unwrap().clone();
    let flushed = audit
        .at_last_flush
        .lock()
        .unwrap()
        .expect("the gateway flushed");
    assert_eq!(
        events.len() - flushed,
        0,
        "audit events recorded after the gateway's final flush"
    );
    let ids = |pick: fn(&AuditEventKind) -> Option<u64>| -> BTreeSet<u64> {
        events[..flushed]
            .iter()
            .filter_map(|e| pick(&e.kind))
            .collect()
    };
    let started = ids(|k| match k {
        AuditEventKind::RequestStarted(s) => Some(s.request_id),
        _ => None,
    });
    let finished = ids(|k| match k {
        AuditEventKind::RequestFinished(f) => Some(f.request_id),
        _ => None,
    });
    let opened = ids(|k| match k {
        AuditEventKind::StreamOpened { request_id, .. } => Some(*request_id),
        _ => None,
    });
    let closed = ids(|k| match k {
        AuditEventKind::StreamClosed(c) => Some(c.request_id),
        _ => None,
    });
    assert_eq!(opened.len(), WATCHES, "every watch was recorded as opened");
    assert_eq!(
        started.difference(&finished).count(),
        0,
        "requests without RequestFinished before the final flush"
    );
    assert_eq!(
        opened.difference(&closed).count(),
        0,
        "streams without StreamClosed before the final flush"
    );
    let cut_by_the_stop = events[..flushed]
        .iter()
        .filter(|e| {
            matches!(&e.kind, AuditEventKind::StreamClosed(c)
            if c.reason.as_deref().is_some_and(|r| r.contains("shutting down")))
        })
        .count();
    assert_eq!(cut_by_the_stop, WATCHES, "the stop ended every watch");
    drop(open);
    double.shutdown().await;
}

/// An exec open (stdin typed, its echo read) when the gateway stops: its splice and recorder end
/// with the stop, and their last events are written before the final flush. Two things make the
/// drain wait for them, either enough: the gateway tracks the splice and recorder tasks, and the
/// request's in-flight guards live in the splice's tap and the recorder's emit. With both gone
/// (detached tasks, a recorder holding no guard) this fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stopping_the_gateway_writes_an_open_execs_end_and_recording_before_the_final_flush() {
    let witness = Arc::new(FlushWitness {
        slow_recording_end: true,
        ..FlushWitness::default()
    });
    let path = InProcessPath::start_with(PathOptions {
        extra_audit: Some(witness.clone()),
        ..PathOptions::default()
    })
    .await;
    let target = format!(
        "/api/v1/namespaces/default/pods/{}/exec?command=cat&stdin=true&stdout=true",
        first_pod()
    );
    let (mut ws, _) = open_websocket(
        &path.local_url,
        &path.local_ca_pem,
        &target,
        path.local_token.expose(),
        "v5.channel.k8s.io",
    )
    .await
    .expect("the exec is admitted");
    let mut typed = vec![0u8];
    typed.extend_from_slice(b"still here\n");
    ws.send(Message::Binary(typed.into())).await.expect("stdin");
    let echoed = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(message)) = ws.next().await {
            if matches!(&message, Message::Binary(b) if b.first() == Some(&1)) {
                return;
            }
        }
        panic!("the exec ended before echoing");
    });
    echoed.await.expect("cat echoed");

    // The exec is open, its recorder running, when the whole path stops.
    tokio::time::timeout(Duration::from_secs(30), path.shutdown())
        .await
        .expect("the path stops within its drain bounds");
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(ws);

    let events = witness.events.lock().unwrap().clone();
    let flushed = witness.at_last_flush.lock().unwrap().expect("flushed");
    assert_eq!(
        events.len() - flushed,
        0,
        "audit events recorded after the gateway's final flush"
    );
    let exec = events
        .iter()
        .find_map(|e| match &e.kind {
            AuditEventKind::StreamDetails(d) if d.recorded => Some(d.request_id),
            _ => None,
        })
        .expect("the exec was recorded");
    let before_flush = &events[..flushed];
    let closed = before_flush
        .iter()
        .any(|e| matches!(&e.kind, AuditEventKind::StreamClosed(c) if c.request_id == exec));
    let finished = before_flush
        .iter()
        .any(|e| matches!(&e.kind, AuditEventKind::RequestFinished(f) if f.request_id == exec));
    let ended = before_flush.iter().find_map(|e| match &e.kind {
        AuditEventKind::RecordingEnded(r) if r.request_id == exec => Some(r.clone()),
        _ => None,
    });
    assert!(closed, "the exec's StreamClosed before the final flush");
    assert!(
        finished,
        "the exec's RequestFinished before the final flush"
    );
    let ended = ended.expect("the exec's RecordingEnded before the final flush");
    assert!(ended.recorded_bytes >= 2 * 11, "{ended:?}");
}
