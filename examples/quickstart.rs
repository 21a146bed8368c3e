//! Run with: `cargo run -p kms-pam-examples --example quickstart`
//!
//! The whole system in one process on the embedded default: KMS with its SQLite store in a fresh
//! data dir, a gateway enrolled with a one-time token, the Kubernetes API server double as the
//! cluster, a resource and an account (its service-account token encrypted at rest), a session
//! opened exactly as `kms-pam pam access` opens one (key and CSR made here, mutual-TLS tunnel,
//! HTTPS loopback proxy, session kubeconfig), the real kubectl through it, and what KMS recorded:
//! the session's commands and the check of its signed record.

use std::io::Write;
use std::time::Duration;

use kms_pam::access::{open_session, AccessRequest};
use kms_pam::kube::kubeconfig::KubeconfigTarget;
use kms_pam_examples::demo::{Demo, ACCOUNT, RESOURCE};
use kms_pam_tests::kubectl::kubectl_binary;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    quickstart(&mut std::io::stdout()).await
}

/// Everything the example does, printing to `out` (a test runs it too).
pub(crate) async fn quickstart(out: &mut dyn Write) -> anyhow::Result<()> {
    let demo = Demo::start().await?;
    writeln!(
        out,
        "KMS at {}, data in {}",
        demo.kms_url,
        demo.data.path().display()
    )?;
    let admin = demo.admin()?;

    // A session, as `kms-pam pam access demo/admin` opens it.
    let mut request = AccessRequest::new(RESOURCE, ACCOUNT, Duration::from_secs(600));
    request.reason = Some("quickstart".into());
    let kubeconfig = demo.data.path().join("session.kubeconfig");
    request.kubeconfig = Some(KubeconfigTarget::File(kubeconfig.clone()));
    let session = open_session(&admin, request).await?;
    writeln!(
        out,
        "session {} until {}",
        session.id(),
        kms_pam::time::format_rfc3339(session.expires_at())
    )?;
    for args in [&["get", "pods"][..], &["get", "deployments"]] {
        writeln!(out, "\n$ kubectl {}", args.join(" "))?;
        let run = tokio::process::Command::new(kubectl_binary())
            .args(args)
            .env("KUBECONFIG", &kubeconfig)
            .output()
            .await?;
        out.write_all(&run.stdout)?;
        out.write_all(&run.stderr)?;
        anyhow::ensure!(run.status.success(), "kubectl {} failed", args.join(" "));
    }
    let id = session.id().clone();
    // `close` ends the session and waits until the gateway delivered its signed record.
    let summary = session.close().await?;
    writeln!(out, "\nsession {id}: {}", summary.session.session.status)?;

    let detail = admin.sessions().detail(&id).await?;
    writeln!(out, "KMS recorded these commands:")?;
    for command in &detail.commands {
        let target = command
            .subject()
            .and_then(|r| r.resource.as_deref())
            .unwrap_or_default();
        let statuses: Vec<String> = command
            .requests
            .iter()
            .filter(|r| !r.discovery)
            .filter_map(|r| r.status.map(|s| s.to_string()))
            .collect();
        // What the requests did (`derived`), not only what kubectl said it was running.
        writeln!(
            out,
            "  {} {target}  ({} requests, {})",
            command.derived,
            command.requests.len(),
            statuses.join(" ")
        )?;
        if let Some(why) = &command.mismatch {
            writeln!(out, "    MISMATCH: {why}")?;
        }
    }
    let verdict = admin.sessions().verify(&id).await?;
    writeln!(out, "and its signed record checks out: {verdict:?}")?;
    demo.stop().await;
    Ok(())
}
