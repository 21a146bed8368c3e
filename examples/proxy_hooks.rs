//! Run with: `cargo run -p kms-pam-examples --example proxy_hooks`
//!
//! A gateway hook that refuses `delete` on `secrets`, answering kubectl with a proper Kubernetes
//! `Status` (403) — the request never reaches the cluster — while everything else passes.

use std::sync::Arc;

use async_trait::async_trait;
use kms_pam::kube::Verb;
use kms_pam::proxy::{ProxyError, ProxyHooks, RequestContext};
use kms_pam_tests::harness::{InProcessPath, PathOptions};

/// Secrets may be read and created in a session, never deleted.
struct NoSecretDeletes;

#[async_trait]
impl ProxyHooks for NoSecretDeletes {
    async fn on_request(
        &self,
        ctx: &mut RequestContext<'_>,
        _request: &mut http::request::Parts,
    ) -> Result<(), ProxyError> {
        let deleting = matches!(ctx.info.verb, Verb::Delete | Verb::DeleteCollection);
        if deleting && ctx.info.resource.as_deref() == Some("secrets") {
            let user = ctx.session.map_or("this user", |s| s.user.as_str());
            return Err(ProxyError::forbidden(format!(
                "user {user} may not delete secrets through kms-pam (policy no-secret-deletes)"
            )));
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let path = InProcessPath::start_with(PathOptions {
        hooks: Arc::new(NoSecretDeletes),
        ..PathOptions::default()
    })
    .await;
    let create = [
        "create",
        "secret",
        "generic",
        "db-password",
        "--from-literal=password=hunter2",
    ];
    let delete = ["delete", "secret", "db-password"];
    for args in [&create[..], &delete[..]] {
        println!("$ kubectl {}", args.join(" "));
        let out = path.kubectl.run(args).await;
        print!("{}{}", out.stdout_str(), out.stderr);
    }
    let deletes = path
        .double
        .requests()
        .iter()
        .filter(|r| r.method == "DELETE")
        .count();
    println!("DELETE requests that reached the cluster: {deletes}");
    path.shutdown().await;
    anyhow::ensure!(deletes == 0, "the hook let a delete through");
    Ok(())
}
