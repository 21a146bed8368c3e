//! The proxy engine driven in-process through the public API alone: `handle` on both sides with
//! plain `Full<Bytes>` bodies, an embedder's pipeline (stages before and after the session check,
//! per-request state, the logging phase, a replaced upstream client, an observer), and a local
//! stage that refuses before anything is dialled.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use kms_pam::audit::{AuditEventKind, MemoryAuditSink};
use kms_pam::credential::{MemoryCredentialStore, Upstream};
use kms_pam::gateway::{self, GatewayConfig};
use kms_pam::kube::Verb;
use kms_pam::metrics::GatewayObserver;
use kms_pam::proxy::{
    self, GatewayProxy, GatewaySession, LocalProxy, Pipeline, ProxyBody, ProxyError, ProxyHooks,
    RequestContext, RequestOutcome, UpstreamClient,
};
use kms_pam::session::{MemorySessionManager, NewSession, Session, SessionId, SessionStatus};
use kms_pam::tls::UpstreamTls;
use kms_pam::transport::memory::memory_gateway;
use kms_pam::transport::{BoxedIo, GatewayTransport, TransportError};
use kms_pam::Secret;
use tokio_util::sync::CancellationToken;

/// An API server in a closure: records what reached it, answers with a small JSON list.
#[derive(Default)]
struct RecordingUpstream {
    seen: Mutex<Vec<(String, http::HeaderMap, Bytes)>>,
}

#[async_trait]
impl UpstreamClient for RecordingUpstream {
    async fn send(
        &self,
        request: Request<ProxyBody>,
        _upgrade: bool,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let (parts, body) = request.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| ProxyError::upstream(format!("request body: {e}")))?
            .to_bytes();
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        self.seen
            .lock()
            .expect("lock")
            .push((path.to_owned(), parts.headers, body));
        let json = r#"{"kind":"PodList","apiVersion":"v1","items":[]}"#;
        Ok(Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/json")
            .body(proxy::full(json))
            .expect("response"))
    }
}

/// Times each request (state from `on_request` to `on_response`) and logs every outcome.
#[derive(Default)]
struct Timing {
    logged: Mutex<Vec<(u16, Option<String>)>>,
}

#[derive(Clone)]
struct Started(Instant);

#[async_trait]
impl ProxyHooks for Timing {
    async fn on_request(
        &self,
        ctx: &mut RequestContext<'_>,
        _request: &mut http::request::Parts,
    ) -> Result<(), ProxyError> {
        ctx.state.insert(Started(Instant::now()));
        Ok(())
    }

    fn on_response(&self, ctx: &mut RequestContext<'_>, response: &mut http::response::Parts) {
        if let Some(Started(at)) = ctx.state.get::<Started>() {
            let micros = at.elapsed().as_micros().to_string();
            let value = http::HeaderValue::from_str(&micros).expect("digits");
            response.headers.insert("x-gateway-micros", value);
        }
    }

    fn on_logging(&self, _ctx: &RequestContext<'_>, outcome: &RequestOutcome<'_>) {
        let error = outcome.error.map(|e| e.message().to_owned());
        let entry = (outcome.status.as_u16(), error);
        self.logged.lock().expect("lock").push(entry);
    }
}

/// Refuses deleting secrets; counts the requests it was asked about.
#[derive(Default)]
struct NoSecretDeletes {
    asked: AtomicUsize,
}

#[async_trait]
impl ProxyHooks for NoSecretDeletes {
    async fn on_request(
        &self,
        ctx: &mut RequestContext<'_>,
        request: &mut http::request::Parts,
    ) -> Result<(), ProxyError> {
        self.asked.fetch_add(1, Ordering::Relaxed);
        // A stage cannot smuggle credentials: the header policy runs after it.
        let smuggled = http::HeaderValue::from_static("Bearer stage-token");
        request.headers.insert("authorization", smuggled);
        let delete = matches!(ctx.info.verb, Verb::Delete | Verb::DeleteCollection);
        if delete && ctx.info.resource.as_deref() == Some("secrets") {
            return Err(ProxyError::forbidden("no secret deletes (policy)"));
        }
        Ok(())
    }
}

#[derive(Default)]
struct Counting {
    finished: AtomicUsize,
}

impl GatewayObserver for Counting {
    fn request_finished(&self, _status: u16, _bytes_in: u64, _bytes_out: u64) {
        self.finished.fetch_add(1, Ordering::Relaxed);
    }
}

fn session() -> Session {
    let now = SystemTime::now();
    Session {
        id: SessionId::new("s-engine"),
        user: "alice".into(),
        resource: "prod".into(),
        account: "admin".into(),
        gateway: "gw".into(),
        status: SessionStatus::Active,
        created_at: now,
        expires_at: now + Duration::from_secs(600),
        ended_at: None,
        reason: None,
        binding: None,
    }
}

fn request(method: &str, path: &str, body: &'static str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", "Bearer local-token")
        .header("impersonate-user", "system:admin")
        .header("kubectl-command", "kubectl get")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .expect("request")
}

async fn body_text(response: Response<ProxyBody>) -> String {
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[tokio::test]
async fn the_gateway_engine_runs_an_embedders_pipeline_on_full_bodies() {
    let upstream = Arc::new(RecordingUpstream::default());
    let (timing, guard) = (
        Arc::new(Timing::default()),
        Arc::new(NoSecretDeletes::default()),
    );
    let observer = Arc::new(Counting::default());
    let pipeline = Pipeline::builder()
        .stage_first(timing.clone())
        .stage(guard.clone())
        .upstream(upstream.clone())
        .observer(observer.clone())
        .build();
    let audit = Arc::new(MemoryAuditSink::new());
    let engine = GatewayProxy::new(pipeline, audit.clone());
    let gs = GatewaySession::new(session(), Secret::new("sa-token"), upstream.clone());

    let ok = engine
        .handle(
            &gs,
            request("POST", "/api/v1/namespaces/default/configmaps", "{\"a\":1}"),
        )
        .await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert!(
        ok.headers().contains_key("x-gateway-micros"),
        "{:?}",
        ok.headers()
    );
    assert!(body_text(ok).await.contains("PodList"));
    {
        let seen = upstream.seen.lock().expect("lock");
        let (path, headers, body) = &seen[0];
        assert_eq!(path, "/api/v1/namespaces/default/configmaps");
        assert_eq!(headers["authorization"], "Bearer sa-token");
        assert!(!headers.contains_key("impersonate-user"));
        assert_eq!(&body[..], b"{\"a\":1}");
    }

    let refused = engine
        .handle(
            &gs,
            request("DELETE", "/api/v1/namespaces/default/secrets/db", ""),
        )
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(body_text(refused).await.contains("no secret deletes"));
    assert_eq!(
        upstream.seen.lock().expect("lock").len(),
        1,
        "refused request forwarded"
    );

    gs.stop(SessionStatus::Terminated);
    let stopped = engine
        .handle(&gs, request("GET", "/api/v1/namespaces/default/pods", ""))
        .await;
    assert_eq!(stopped.status(), StatusCode::UNAUTHORIZED);
    drop(body_text(stopped).await);
    // The stage after the session check never saw the stopped session's request.
    assert_eq!(guard.asked.load(Ordering::Relaxed), 2);

    let logged = timing.logged.lock().expect("lock").clone();
    let statuses: Vec<u16> = logged.iter().map(|(s, _)| *s).collect();
    assert_eq!(statuses, [200, 403, 401], "{logged:?}");
    assert!(logged[2]
        .1
        .as_deref()
        .is_some_and(|m| m.contains("terminated")));
    assert_eq!(observer.finished.load(Ordering::Relaxed), 3);
    let finished = audit
        .events()
        .into_iter()
        .filter(|e| matches!(e.kind, AuditEventKind::RequestFinished(_)))
        .count();
    assert_eq!(
        finished, 3,
        "every request is audited, refused ones included"
    );
}

/// A transport that must not be used.
#[derive(Default)]
struct NoDial {
    dials: AtomicUsize,
}

#[async_trait]
impl GatewayTransport for NoDial {
    async fn connect(&self) -> Result<BoxedIo, TransportError> {
        self.dials.fetch_add(1, Ordering::Relaxed);
        Err(TransportError::Closed)
    }
}

#[tokio::test]
async fn the_local_engine_checks_its_token_and_runs_stages_before_dialling() {
    let transport = Arc::new(NoDial::default());
    let guard = Arc::new(NoSecretDeletes::default());
    let local = LocalProxy::new(Secret::new("local-token"), transport.clone()).with_stage(guard);

    let mut anonymous = request("GET", "/api/v1/pods", "");
    anonymous.headers_mut().remove("authorization");
    let response = local.handle(anonymous).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let response = local
        .handle(request(
            "DELETE",
            "/api/v1/namespaces/default/secrets/db",
            "",
        ))
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        transport.dials.load(Ordering::Relaxed),
        0,
        "nothing was dialled"
    );

    let response = local.handle(request("GET", "/api/v1/pods", "")).await;
    assert_eq!(
        response.status(),
        StatusCode::BAD_GATEWAY,
        "the tunnel is down"
    );
    assert!(transport.dials.load(Ordering::Relaxed) > 0);
}

/// Records what the logging phase saw: status, whether a session was known, the path's resource.
#[derive(Default)]
struct Logged {
    seen: Mutex<Vec<(u16, bool, Option<String>)>>,
}

impl ProxyHooks for Logged {
    fn on_logging(&self, ctx: &RequestContext<'_>, outcome: &RequestOutcome<'_>) {
        let entry = (
            outcome.status.as_u16(),
            ctx.session.is_some(),
            ctx.info.resource.clone(),
        );
        self.seen.lock().expect("lock").push(entry);
    }
}

/// The logging phase sees every answered request, also those refused before any stage could
/// run: an anonymous request at the local proxy, and a request on a tunnel the gateway refused.
#[tokio::test]
async fn the_logging_phase_sees_requests_refused_before_any_stage() {
    let guard = Arc::new(NoSecretDeletes::default());
    let logged = Arc::new(Logged::default());
    let local = LocalProxy::new(Secret::new("local-token"), Arc::new(NoDial::default()))
        .with_stage(guard.clone())
        .with_stage(logged.clone());
    let mut anonymous = request("GET", "/api/v1/pods", "");
    anonymous.headers_mut().remove("authorization");
    assert_eq!(
        local.handle(anonymous).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let response = local.handle(request("OPTIONS", "*", "")).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        guard.asked.load(Ordering::Relaxed),
        0,
        "no stage ran on_request"
    );
    assert_eq!(
        logged.seen.lock().expect("lock").clone(),
        [(401, false, Some("pods".to_owned())), (400, false, None)]
    );

    // A session the gateway does not know: its tunnel is refused, and each request on it is
    // answered by the gateway itself, seen by the stages before and after the session check.
    let (first, after) = (Arc::new(Logged::default()), Arc::new(Logged::default()));
    let api = Arc::new(RecordingUpstream::default());
    let pipeline = Pipeline::builder()
        .stage_first(first.clone())
        .stage(after.clone())
        .upstream(api.clone())
        .build();
    let config = GatewayConfig::new(
        "gw",
        Arc::new(MemorySessionManager::new()),
        Arc::new(MemoryCredentialStore::new()),
        Arc::new(MemoryAuditSink::new()),
    )
    .with_pipeline(pipeline);
    let (dial, acceptor) = memory_gateway();
    let stop = CancellationToken::new();
    let served = tokio::spawn(gateway::serve(
        acceptor,
        config,
        stop.clone().cancelled_owned(),
    ));
    let local = LocalProxy::new(
        Secret::new("local-token"),
        Arc::new(dial.connector(SessionId::new("no-such-session"))),
    );
    let refused = local
        .handle(request("GET", "/api/v1/pods", ""))
        .await
        .status();
    assert!(refused.is_client_error(), "{refused}");
    for stage in [&first, &after] {
        assert_eq!(
            stage.seen.lock().expect("lock").clone(),
            [(refused.as_u16(), false, Some("pods".to_owned()))]
        );
    }
    assert!(
        api.seen.lock().expect("lock").is_empty(),
        "nothing forwarded"
    );
    stop.cancel();
    served.await.expect("join").expect("gateway");
}

#[tokio::test]
async fn both_engines_in_process_over_the_memory_tunnel() {
    let sessions = Arc::new(MemorySessionManager::new());
    let session = sessions
        .create(NewSession::new(
            "alice",
            "prod",
            "admin",
            "gw",
            Duration::from_secs(600),
        ))
        .await
        .expect("session");
    let credentials = MemoryCredentialStore::new();
    let upstream = Upstream::new(
        "https://api.invalid:6443".parse().expect("url"),
        UpstreamTls::SystemRoots,
    );
    credentials.add_resource("prod", upstream);
    credentials.add_account("prod", "admin", Secret::new("sa-token"));
    let api = Arc::new(RecordingUpstream::default());
    let pipeline = Pipeline::builder().upstream(api.clone()).build();
    let audit = Arc::new(MemoryAuditSink::new());
    let config =
        GatewayConfig::new("gw", sessions, Arc::new(credentials), audit).with_pipeline(pipeline);
    let (dial, acceptor) = memory_gateway();
    let stop = CancellationToken::new();
    let served = tokio::spawn(gateway::serve(
        acceptor,
        config,
        stop.clone().cancelled_owned(),
    ));

    let local = LocalProxy::new(
        Secret::new("local-token"),
        Arc::new(dial.connector(session.id)),
    );
    let response = local.handle(request("GET", "/api/v1/pods", "")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(body_text(response).await.contains("PodList"));
    let seen = api.seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].1["authorization"], "Bearer sa-token");
    stop.cancel();
    served.await.expect("join").expect("gateway");
}

#[tokio::test]
async fn the_gateway_refuses_what_kubectl_never_sends_even_from_a_custom_client() {
    let upstream = Arc::new(RecordingUpstream::default());
    let engine = GatewayProxy::new(
        Pipeline::builder().upstream(upstream.clone()).build(),
        Arc::new(MemoryAuditSink::new()),
    );
    let gs = GatewaySession::new(session(), Secret::new("sa-token"), upstream.clone());
    let connect = engine
        .handle(&gs, request("CONNECT", "10.0.0.1:443", ""))
        .await;
    assert_eq!(connect.status(), StatusCode::METHOD_NOT_ALLOWED);
    let star = engine.handle(&gs, request("OPTIONS", "*", "")).await;
    assert_eq!(star.status(), StatusCode::BAD_REQUEST);
    // A header list an API server would answer by closing the shared upstream connection.
    let mut huge = request("GET", "/api/v1/pods", "");
    let value = http::HeaderValue::from_str(&"x".repeat(800 * 1024)).expect("header");
    huge.headers_mut().insert("x-big", value);
    let too_big = engine.handle(&gs, huge).await;
    assert_eq!(
        too_big.status(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    assert!(
        upstream.seen.lock().expect("lock").is_empty(),
        "something was forwarded"
    );
}
