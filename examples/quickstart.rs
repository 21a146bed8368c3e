//! Run with: `cargo run -p kms-pam-examples --example quickstart`
//!
//! The whole system in one process on the embedded default: KMS with its SQLite store in a fresh
//! data dir, a gateway enrolled with a one-time token, the Kubernetes API server double as the
//! cluster, a resource and an account (its service-account token encrypted at rest), a session
//! opened exactly as `kms-pam pam access` opens one (key and CSR made here, mutual-TLS tunnel,
//! HTTPS loopback proxy, session kubeconfig), the real kubectl through it, and what KMS recorded.

use std::time::Duration;

use kms_pam::access::{open_session, AccessRequest};
use kms_pam::kube::kubeconfig::KubeconfigTarget;
use kms_pam_examples::demo::{Demo, ACCOUNT, RESOURCE};
use kms_pam_tests::kubectl::kubectl_binary;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let demo = Demo::start().await?;
    println!(
        "KMS at {}, data in {}",
        demo.kms_url,
        demo.data.path().display()
    );
    let admin = demo.admin()?;

    // A session, as `kms-pam pam access demo/admin` opens it.
    let mut request = AccessRequest::new(RESOURCE, ACCOUNT, Duration::from_secs(600));
    request.reason = Some("quickstart".into());
    let kubeconfig = demo.data.path().join("session.kubeconfig");
    request.kubeconfig = Some(KubeconfigTarget::File(kubeconfig.clone()));
    let session = open_session(&admin, request).await?;
    println!(
        "session {} until {}",
        session.id(),
        kms_pam::time::format_rfc3339(session.expires_at())
    );
    for args in [&["get", "pods"][..], &["get", "deployments"]] {
        println!("\n$ kubectl {}", args.join(" "));
        let out = tokio::process::Command::new(kubectl_binary())
            .args(args)
            .env("KUBECONFIG", &kubeconfig)
            .output()
            .await?;
        print!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        anyhow::ensure!(out.status.success(), "kubectl {} failed", args.join(" "));
    }
    let id = session.id().clone();
    let summary = session.close().await?;
    println!("\nsession {id}: {}", summary.session.session.status);
    let detail = admin.get_session(&id).await?;
    println!("KMS recorded: {}", serde_json::to_string_pretty(&detail)?);
    demo.stop().await;
    Ok(())
}
