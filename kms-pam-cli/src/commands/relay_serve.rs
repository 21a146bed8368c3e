//! `kms-pam relay serve`: the relay role, on the certificate `kms-pam relay certificate` wrote.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use kms_pam::relay::{self, RelayConfig, RelayTls};
use kms_pam::tls::PrivateKeyPem;
use tokio::net::TcpListener;

use super::server::shutdown_signal;

/// `relay serve --listen ADDR --cert-dir DIR [--metrics-listen ADDR] [--drain-grace SECS]`.
#[derive(Debug, Args)]
pub(crate) struct RelayServeArgs {
    /// Address gateways and CLIs connect to.
    #[arg(
        long,
        env = "KMS_PAM_LISTEN",
        default_value = "0.0.0.0:8443",
        value_name = "ADDR"
    )]
    listen: SocketAddr,
    /// Where `kms-pam relay certificate` wrote relay.crt, relay.key and kms-ca.crt.
    #[arg(
        long,
        env = "KMS_PAM_CERT_DIR",
        default_value = "kms-pam-relay",
        value_name = "DIR"
    )]
    cert_dir: PathBuf,
    /// The relay's name in logs and in what CLIs are told (default: the certificate's).
    #[arg(long, env = "KMS_PAM_NAME", value_name = "NAME")]
    name: Option<String>,
    /// Serve /healthz, /readyz and Prometheus /metrics on this address.
    #[arg(long, env = "KMS_PAM_METRICS_LISTEN", value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    /// On SIGTERM, how long relayed streams may finish after gateways were told to re-tunnel.
    #[arg(
        long,
        env = "KMS_PAM_DRAIN_GRACE",
        default_value = "30",
        value_name = "SECS"
    )]
    drain_grace: u64,
}

pub(crate) async fn run(args: RelayServeArgs) -> anyhow::Result<ExitCode> {
    let read = |file: &str| {
        let path = args.cert_dir.join(file);
        std::fs::read_to_string(&path).with_context(|| {
            format!(
                "cannot read {}; write it with `kms-pam relay certificate --out {}`",
                path.display(),
                args.cert_dir.display()
            )
        })
    };
    let cert = read("relay.crt")?;
    let tls = RelayTls::new(
        read("kms-ca.crt")?,
        cert.clone(),
        PrivateKeyPem::new(read("relay.key")?),
    );
    let name = match args.name {
        Some(name) => name,
        None => certificate_name(&cert)?,
    };
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let mut config = RelayConfig::new(name.clone(), tls);
    config.drain_grace = Duration::from_secs(args.drain_grace);
    if let Some(addr) = args.metrics_listen {
        let metrics = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} for metrics"))?;
        config.metrics_listener = Some(metrics);
    }
    tracing::info!(relay = %name, listen = %args.listen, "relay starting");
    relay::serve(listener, config, shutdown_signal()).await?;
    tracing::info!(relay = %name, "relay stopped");
    Ok(ExitCode::SUCCESS)
}

/// The relay name the certificate carries (`kms-pam://relay/<name>`).
fn certificate_name(cert_pem: &str) -> anyhow::Result<String> {
    relay::certificate_name(cert_pem)
        .context("relay.crt is not a kms-pam relay certificate (see `kms-pam relay certificate`)")
}
