//! Run with: `cargo run -p kms-pam-examples --example quickstart`
//!
//! The whole system in one process on the embedded default: KMS with its SQLite store in a fresh
//! data dir, a gateway enrolled with a one-time token, the Kubernetes API server double as the
//! cluster, a resource and an account (its service-account token encrypted at rest), a session
//! opened exactly as `kms-pam pam access` opens one (key and CSR made here, mutual-TLS tunnel,
//! HTTPS loopback proxy, session kubeconfig), the real kubectl through it, and what KMS recorded.

use std::sync::Arc;
use std::time::Duration;

use kms_pam::access::{open_session, AccessRequest};
use kms_pam::audit::NullAuditSink;
use kms_pam::gateway::kms_mode::{self, KmsGateway};
use kms_pam::kms::api::{CreateAccount, CreateResource};
use kms_pam::kms::client::KmsClient;
use kms_pam::kms::server::{Server, ServerConfig};
use kms_pam::kube::kubeconfig::KubeconfigTarget;
use kms_pam::proxy::NoHooks;
use kms_pam::Secret;
use kms_pam_tests::apiserver::{ApiServerDouble, DoubleConfig};
use kms_pam_tests::kubectl::kubectl_binary;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let stop = CancellationToken::new();

    // KMS on the embedded default (SQLite in the data dir), admin bootstrapped on first start.
    let server = Server::open(ServerConfig::new(data.path().join("kms"))).await?;
    let admin_token = std::fs::read_to_string(server.admin_token_path())?;
    let kms_listener = TcpListener::bind("127.0.0.1:0").await?;
    let kms_url = format!("http://{}", kms_listener.local_addr()?);
    let kms = tokio::spawn(server.serve(kms_listener, stop.clone().cancelled_owned()));
    let admin = KmsClient::new(&kms_url, Some(Secret::new(admin_token.trim())))?;
    println!("KMS at {kms_url}, data in {}", data.path().display());

    // A gateway, enrolled with its one-time token.
    let enrollment = admin
        .create_gateway("gw-quickstart")
        .await?
        .enrollment_token;
    let gateway_listener = TcpListener::bind("127.0.0.1:0").await?;
    let gateway_addr = gateway_listener.local_addr()?.to_string();
    let gateway = KmsGateway {
        kms_url: kms_url.clone(),
        name: "gw-quickstart".into(),
        data_dir: data.path().join("gateway"),
        advertise: gateway_addr.clone(),
        enroll_token: Some(enrollment),
        audit: Arc::new(NullAuditSink),
        hooks: Arc::new(NoHooks),
        metrics_listener: None,
    };
    let gateway_task = tokio::spawn(kms_mode::serve(
        gateway_listener,
        gateway,
        stop.clone().cancelled_owned(),
    ));
    println!("gateway gw-quickstart at {gateway_addr}");

    // The cluster, as a resource with one account.
    let cluster = ApiServerDouble::start(DoubleConfig::default()).await?;
    admin
        .create_resource(&CreateResource {
            kind: "kubernetes".into(),
            name: "demo".into(),
            url: cluster.url(),
            gateway: "gw-quickstart".into(),
            ssl_verify: true,
            ca_cert: Some(cluster.ca_pem().to_owned()),
        })
        .await?;
    let account = CreateAccount {
        name: "admin".into(),
        token: cluster.token().to_owned(),
        description: Some("cluster-admin service account".into()),
        max_duration_secs: Some(3600),
    };
    admin.create_account("demo", &account).await?;
    wait_for_gateway(&admin).await?;

    // A session, as `kms-pam pam access demo/admin` opens it.
    let mut request = AccessRequest::new("demo", "admin", Duration::from_secs(600));
    request.reason = Some("quickstart".into());
    request.kubeconfig = Some(KubeconfigTarget::File(
        data.path().join("session.kubeconfig"),
    ));
    let session = open_session(&admin, request).await?;
    println!(
        "session {} until {}",
        session.id(),
        kms_pam::time::format_rfc3339(session.expires_at())
    );
    let kubeconfig = session.kubeconfig_path().map(|p| p.to_owned());
    for args in [&["get", "pods"][..], &["get", "deployments"]] {
        println!("\n$ kubectl {}", args.join(" "));
        let out = tokio::process::Command::new(kubectl_binary())
            .args(args)
            .env(
                "KUBECONFIG",
                kubeconfig.as_deref().unwrap_or(std::path::Path::new("")),
            )
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
    stop.cancel();
    kms.await??;
    gateway_task.await??;
    cluster.shutdown().await;
    Ok(())
}

/// The gateway enrolls and sends its first heartbeat right after start.
async fn wait_for_gateway(admin: &KmsClient) -> anyhow::Result<()> {
    for _ in 0..100 {
        let gateways = admin.list_gateways().await?;
        if gateways.iter().any(|g| g.status == "online") {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("the gateway did not come online")
}
