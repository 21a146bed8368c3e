//! Part (2) of the benchmark: KMS opening and closing sessions one after another, in process.

use std::time::{Duration, Instant};

use kms_pam::access::{open_session, AccessRequest};
use kms_pam::kms::client::KmsClient;
use kms_pam::kube::kubeconfig::KubeconfigTarget;
use kms_pam::server::{Server, ServerConfig};
use kms_pam::Secret;
use serde::Serialize;

use super::percentile;

/// Part (2)'s figures.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct KmsSessions {
    pub(crate) sessions: usize,
    /// Opened and closed, one after another.
    pub(crate) cycle_per_s: f64,
    /// Opens alone: 1 / mean time to a ready kubeconfig.
    pub(crate) open_per_s: f64,
    pub(crate) open_p50_ms: f64,
    pub(crate) open_p99_ms: f64,
    pub(crate) close_p50_ms: f64,
}

/// A KMS in-process; `m` sessions opened (kubeconfig written) and closed one after another.
pub(crate) async fn kms_sessions(m: usize) -> anyhow::Result<KmsSessions> {
    let dir = tempfile::tempdir()?;
    let server = Server::open(ServerConfig::new(dir.path().join("data"))).await?;
    let token = std::fs::read_to_string(server.admin_token_path())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve(listener, async {
        let _ = stopped.await;
    }));
    let admin = KmsClient::new(&url, Some(Secret::new(token.trim())))?;
    let audit_key = kms_pam::audit::evidence::signing::SigningKey::generate()?.0;
    kms_pam_benches::kms::seed_world(&admin, &url, &audit_key).await?;

    let (mut opens, mut closes) = (Vec::with_capacity(m), Vec::with_capacity(m));
    let begun = Instant::now();
    for i in 0..m {
        let kubeconfig = dir.path().join(format!("kubeconfig-{i}"));
        let request = AccessRequest::new("prod", "admin", Duration::from_secs(600))
            .with_reason("benchmark")
            .with_kubeconfig(KubeconfigTarget::File(kubeconfig));
        let started = Instant::now();
        let access = open_session(&admin, request).await?;
        opens.push(started.elapsed().as_micros() as u64);
        let closing = Instant::now();
        access.close().await?;
        closes.push(closing.elapsed().as_micros() as u64);
    }
    let cycle = begun.elapsed().as_secs_f64();
    let _ = stop.send(());
    serving.await??;
    let mean_open_s = opens.iter().sum::<u64>() as f64 / 1e6 / m.max(1) as f64;
    opens.sort_unstable();
    closes.sort_unstable();
    Ok(KmsSessions {
        sessions: m,
        cycle_per_s: m as f64 / cycle,
        open_per_s: 1.0 / mean_open_s,
        open_p50_ms: percentile(&opens, 0.50) / 1e3,
        open_p99_ms: percentile(&opens, 0.99) / 1e3,
        close_p50_ms: percentile(&closes, 0.50) / 1e3,
    })
}
