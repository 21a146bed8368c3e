//! Micro-benchmarks of the work the gateway does for every request: classifying it, applying
//! the header policy, and building and encoding its audit events.
//!
//! Run with: `cargo bench -p kms-pam-benches --bench hot_path` (`BENCH_QUICK=1` for a smoke run).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::Method;
use kms_pam::audit::{AuditEvent, AuditEventKind, RequestFinished, RequestStarted};
use kms_pam::kube::RequestInfo;
use kms_pam::proxy::headers::{bearer_token, inject_bearer, strip_hop_by_hop, strip_impersonation};
use kms_pam::session::SessionId;
use kms_pam::Secret;

/// What kubectl asks for most: (name, method, path, query).
const REQUESTS: [(&str, &str, &str, Option<&str>); 6] = [
    ("discovery", "GET", "/api", Some("timeout=32s")),
    (
        "list pods",
        "GET",
        "/api/v1/namespaces/default/pods",
        Some("limit=500"),
    ),
    (
        "get deployment",
        "GET",
        "/apis/apps/v1/namespaces/kube-system/deployments/coredns",
        None,
    ),
    (
        "watch pods",
        "GET",
        "/api/v1/namespaces/default/pods",
        Some("watch=true&resourceVersion=1000"),
    ),
    (
        "logs -f",
        "GET",
        "/api/v1/namespaces/default/pods/web-0/log",
        Some("container=web&follow=true"),
    ),
    (
        "exec",
        "POST",
        "/api/v1/namespaces/default/pods/web-0/exec",
        Some("command=sh&stdin=true&stdout=true&tty=true"),
    ),
];

fn classify(c: &mut Criterion) {
    let mut group = c.benchmark_group("classify");
    for (name, method, path, query) in REQUESTS {
        let method = Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET);
        group.bench_function(name, |b| {
            b.iter(|| {
                let info =
                    RequestInfo::classify(black_box(&method), black_box(path), black_box(query));
                black_box(info.stream_kind(query))
            });
        });
    }
    group.finish();
}

/// The headers of a `kubectl get pods` as the gateway receives them from the tunnel.
fn kubectl_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("accept", "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"),
        ("user-agent", "kubectl/v1.32.4 (linux/amd64) kubernetes/4cb5f07"),
        ("kubectl-command", "kubectl get"),
        ("kubectl-session", "0f6f1a52-3a43-4a8b-9d6e-2f1c5b7a9e10"),
        ("accept-encoding", "gzip"),
        ("authorization", "Bearer local-session-token-abcdefghijklmnopqrstuvwxyz"),
        ("impersonate-user", "system:admin"),
    ] {
        headers.append(HeaderName::from_static(name), HeaderValue::from_static(value));
    }
    headers
}

fn header_policy(c: &mut Criterion) {
    let token =
        Secret::new("eyJhbGciOiJSUzI1NiIsImtpZCI6IjEyMyJ9.service-account-token-for-the-bench");
    let local = Secret::new("local-session-token-abcdefghijklmnopqrstuvwxyz");
    let headers = kubectl_headers();
    let mut group = c.benchmark_group("header_policy");
    group.bench_function("gateway: hop-by-hop, impersonation, bearer", |b| {
        b.iter_batched_ref(
            || headers.clone(),
            |h| {
                strip_hop_by_hop(h, false);
                strip_impersonation(h);
                inject_bearer(h, &token)
            },
            BatchSize::SmallInput,
        );
    });
    group.bench_function("local proxy: check token, strip", |b| {
        b.iter_batched_ref(
            || headers.clone(),
            |h| {
                let ok = bearer_token(h).is_some_and(|t| local.constant_time_eq(t));
                h.remove(http::header::AUTHORIZATION);
                strip_hop_by_hop(h, false);
                ok
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

fn started_event() -> AuditEvent {
    let info = RequestInfo::classify(
        &Method::GET,
        "/api/v1/namespaces/default/pods",
        Some("limit=500"),
    );
    AuditEvent::now(
        SessionId::new("3b0d8f4e-8c1a-4f7e-9a51-6f0e2d7c9b13"),
        AuditEventKind::RequestStarted(Box::new(RequestStarted {
            request_id: 4_294_967_296,
            method: "GET".into(),
            path: "/api/v1/namespaces/default/pods".into(),
            query: Some("limit=500".into()),
            info,
            kubectl_command: Some("kubectl get".into()),
            kubectl_session: Some("0f6f1a52-3a43-4a8b-9d6e-2f1c5b7a9e10".into()),
            user_agent: Some("kubectl/v1.32.4 (linux/amd64) kubernetes/4cb5f07".into()),
            impersonation: None,
        })),
    )
}

fn audit_encoding(c: &mut Criterion) {
    let started = started_event();
    let finished = AuditEvent::now(
        started.session_id.clone(),
        AuditEventKind::RequestFinished(RequestFinished {
            request_id: 4_294_967_296,
            status: 200,
            bytes_in: 0,
            bytes_out: 2048,
            duration_ms: 1,
            error: None,
        }),
    );
    let mut group = c.benchmark_group("audit");
    group.bench_function("encode RequestStarted", |b| {
        b.iter(|| serde_json::to_vec(black_box(&started)));
    });
    group.bench_function("encode RequestFinished", |b| {
        b.iter(|| serde_json::to_vec(black_box(&finished)));
    });
    // What the tap pays per event before the sink: a UUID from the OS and the clock.
    group.bench_function("AuditEvent::now", |b| {
        let session = started.session_id.clone();
        b.iter(|| {
            AuditEvent::now(
                session.clone(),
                AuditEventKind::SessionEnded {
                    status: kms_pam::session::SessionStatus::Ended,
                    ended_at: None,
                    end_cause: None,
                },
            )
        });
    });
    group.finish();
}

fn config() -> Criterion {
    let (warm_up, measure) = if kms_pam_benches::quick_mode() {
        (Duration::from_millis(200), Duration::from_millis(500))
    } else {
        (Duration::from_secs(1), Duration::from_secs(3))
    };
    Criterion::default()
        .warm_up_time(warm_up)
        .measurement_time(measure)
}

criterion_group! {
    name = hot_path;
    config = config();
    targets = classify, header_policy, audit_encoding
}
criterion_main!(hot_path);
