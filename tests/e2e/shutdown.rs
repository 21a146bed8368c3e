//! Stopping a gateway with many watches open: every request's last audit events (`StreamClosed`,
//! `RequestFinished`) are written before the gateway's final flush, none after it.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
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
use kms_pam_tests::apiserver::{ApiServerDouble, DoubleConfig};
use tokio_util::sync::CancellationToken;

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
}

#[async_trait]
impl AuditSink for FlushWitness {
    fn record(&self, event: AuditEvent) -> Result<(), AuditError> {
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
