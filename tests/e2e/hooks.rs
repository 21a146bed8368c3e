//! Embedder hooks on the real path: a hook that refuses a verb, and what kubectl and the audit
//! trail see.

use std::sync::Arc;

use async_trait::async_trait;
use kms_pam::audit::AuditEventKind;
use kms_pam::kube::Verb;
use kms_pam::proxy::{ProxyError, ProxyHooks, ProxySide, RequestContext, RequestOutcome};
use kms_pam_tests::harness::{InProcessPath, PathOptions};

/// Refuses deleting configmaps; counts the responses it saw.
#[derive(Default)]
struct NoConfigMapDeletes {
    responses: std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl ProxyHooks for NoConfigMapDeletes {
    async fn on_request(
        &self,
        ctx: &mut RequestContext<'_>,
        _request: &mut http::request::Parts,
    ) -> Result<(), ProxyError> {
        let info = ctx.info;
        if info.verb == Verb::Delete && info.resource.as_deref() == Some("configmaps") {
            return Err(ProxyError::forbidden(format!(
                "deleting configmaps is not allowed in session {} (policy no-configmap-deletes)",
                ctx.session.map_or("?", |s| s.id.as_str())
            )));
        }
        Ok(())
    }

    fn on_response(&self, _ctx: &mut RequestContext<'_>, response: &mut http::response::Parts) {
        self.responses
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        response
            .headers
            .insert("x-kms-pam-hooked", http::HeaderValue::from_static("1"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_refuses_a_verb_with_a_status() {
    let hooks = Arc::new(NoConfigMapDeletes::default());
    let path = InProcessPath::start_with(PathOptions {
        hooks: hooks.clone(),
        ..PathOptions::default()
    })
    .await;
    let get = path.kubectl.run(&["get", "configmaps"]).await;
    assert!(get.success(), "{}", get.stderr);
    let delete = path.kubectl.run(&["delete", "configmap", "big"]).await;
    assert!(!delete.success());
    assert!(
        delete.stderr.contains("Forbidden")
            && delete.stderr.contains("policy no-configmap-deletes"),
        "{}",
        delete.stderr
    );
    assert!(
        !path.double.requests().iter().any(|r| r.method == "DELETE"),
        "the refused delete reached the cluster"
    );
    let still_there = path
        .kubectl
        .run(&["get", "configmap", "big", "-o", "name"])
        .await;
    assert!(still_there.success(), "{}", still_there.stderr);
    let refused = path.audit.events().into_iter().any(|e| {
        matches!(e.kind, AuditEventKind::RequestFinished(f) if f.status == 403
            && f.error.as_deref().is_some_and(|m| m.contains("no-configmap-deletes")))
    });
    assert!(refused, "the refusal is audited");
    assert!(hooks.responses.load(std::sync::atomic::Ordering::Relaxed) > 0);
    path.shutdown().await;
}

/// A local stage: refuses deleting secrets before the request leaves the machine, and logs every
/// answered request with the state its request phase left.
#[derive(Default)]
struct LocalSecretGuard {
    logged: std::sync::Mutex<Vec<(u16, bool, bool)>>,
}

/// Per-request state the guard keeps from `on_request` to `on_logging`.
#[derive(Clone)]
struct Seen(ProxySide);

#[async_trait]
impl ProxyHooks for LocalSecretGuard {
    async fn on_request(
        &self,
        ctx: &mut RequestContext<'_>,
        _request: &mut http::request::Parts,
    ) -> Result<(), ProxyError> {
        ctx.state.insert(Seen(ctx.side));
        if ctx.info.verb == Verb::Delete && ctx.info.resource.as_deref() == Some("secrets") {
            return Err(ProxyError::forbidden(
                "deleting secrets is refused on this machine (policy local-secret-guard)",
            ));
        }
        Ok(())
    }

    fn on_logging(&self, ctx: &RequestContext<'_>, outcome: &RequestOutcome<'_>) {
        let local = ctx
            .state
            .get::<Seen>()
            .is_some_and(|s| s.0 == ProxySide::Local);
        self.logged.lock().expect("lock").push((
            outcome.status.as_u16(),
            outcome.error.is_some(),
            local,
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_stage_refuses_before_the_request_leaves_the_machine() {
    let guard = Arc::new(LocalSecretGuard::default());
    let path = InProcessPath::start_with(PathOptions {
        local_stages: vec![guard.clone()],
        ..PathOptions::default()
    })
    .await;
    let create = path
        .kubectl
        .run(&[
            "create",
            "secret",
            "generic",
            "db",
            "--from-literal=password=x",
        ])
        .await;
    assert!(create.success(), "{}", create.stderr);
    let delete = path.kubectl.run(&["delete", "secret", "db"]).await;
    assert!(!delete.success());
    assert!(
        delete.stderr.contains("Forbidden") && delete.stderr.contains("local-secret-guard"),
        "{}",
        delete.stderr
    );
    assert!(
        !path.double.requests().iter().any(|r| r.method == "DELETE"),
        "the refused delete reached the cluster"
    );
    // Refused on the laptop: the gateway never saw it, so its audit trail has no DELETE.
    let gateway_saw_delete = path
        .audit
        .events()
        .into_iter()
        .any(|e| matches!(&e.kind, AuditEventKind::RequestStarted(s) if s.method == "DELETE"));
    assert!(!gateway_saw_delete, "the delete left the machine");
    let logged = guard.logged.lock().expect("lock").clone();
    assert!(logged
        .iter()
        .any(|&(status, error, local)| status == 403 && error && local));
    assert!(logged
        .iter()
        .any(|&(status, error, local)| status == 201 && !error && local));
    assert!(
        logged.iter().all(|&(_, _, local)| local),
        "state kept across phases: {logged:?}"
    );
    path.shutdown().await;
}
