//! `kms-pam-gateway`: terminates session tunnels and forwards to the Kubernetes API server.
//! Thin: arguments → configuration → `kms_pam::gateway::standalone::serve`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use kms_pam::audit::JsonLinesSink;
use kms_pam::gateway::standalone::{self, StandaloneOptions};
use kms_pam::proxy::NoHooks;
use tokio::net::TcpListener;

/// The kms-pam gateway.
#[derive(Debug, Parser)]
#[command(name = "kms-pam-gateway", version, about)]
struct Args {
    /// Standalone mode: resources, accounts and sessions from this YAML file (see
    /// docs/standalone-gateway.md).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Address to accept session tunnels on.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:8443")]
    listen: SocketAddr,
    /// Serve /healthz and Prometheus /metrics on this address.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    /// Append audit events as JSON lines to this file.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "kms-pam-gateway-audit.jsonl"
    )]
    audit_log: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let file = standalone::load(&args.config)?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let metrics_listener = match args.metrics_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} for metrics"))?,
        ),
        None => None,
    };
    let audit = JsonLinesSink::open(&args.audit_log).await?;
    tracing::info!(name = %file.name, listen = %listener.local_addr()?, "gateway starting");
    let options = StandaloneOptions {
        audit: Arc::new(audit),
        hooks: Arc::new(NoHooks),
        metrics_listener,
    };
    standalone::serve(listener, file, options, shutdown_signal()).await?;
    tracing::info!("gateway stopped");
    Ok(())
}

/// Ctrl+C or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
