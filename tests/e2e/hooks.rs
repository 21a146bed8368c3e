//! Embedder hooks on the real path: a hook that refuses a verb, and what kubectl and the audit
//! trail see.

use std::sync::Arc;

use async_trait::async_trait;
use kms_pam::audit::AuditEventKind;
use kms_pam::kube::Verb;
use kms_pam::proxy::{ProxyError, ProxyHooks, RequestContext};
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
        ctx: &RequestContext<'_>,
        _request: &mut http::request::Parts,
    ) -> Result<(), ProxyError> {
        let info = ctx.info;
        if info.verb == Verb::Delete && info.resource.as_deref() == Some("configmaps") {
            return Err(ProxyError::forbidden(format!(
                "deleting configmaps is not allowed in session {} (policy no-configmap-deletes)",
                ctx.session.id
            )));
        }
        Ok(())
    }

    fn on_response(&self, _ctx: &RequestContext<'_>, response: &mut http::response::Parts) {
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
