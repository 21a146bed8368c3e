//! Run with: `cargo run -p kms-pam-examples --example embed_local_proxy`
//!
//! A tool of your own that opens a kms-pam session and serves the local proxy itself. The
//! embedding is the four lines in `main` between the markers; `Demo` only starts a KMS, a
//! gateway and a cluster for it to talk to.

use std::time::Duration;

use kms_pam::access::{open_session, AccessRequest};
use kms_pam::kms::client::KmsClient;
use kms_pam_examples::demo::{Demo, ACCOUNT, RESOURCE};
use kms_pam_tests::kubectl::Kubectl;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let demo = Demo::start().await?;

    // --- the embedding ---
    let kms = KmsClient::new(&demo.kms_url, Some(demo.admin_token.clone()))?;
    let request = AccessRequest::new(RESOURCE, ACCOUNT, Duration::from_secs(300));
    let session = open_session(&kms, request).await?;
    // The proxy is serving: point any Kubernetes client at it.
    let kubectl = Kubectl::for_session(&session)?;
    // --- end of the embedding ---

    let out = kubectl.run(&["get", "pods"]).await;
    print!("{}{}", out.stdout_str(), out.stderr);
    session.close().await?;
    demo.stop().await;
    anyhow::ensure!(out.success(), "kubectl through the embedded proxy failed");
    Ok(())
}
