//! `bench-node ROLE`: one process of a benchmarked path (`upstream`, `gateway` or
//! `local-proxy`), spawned by the bench targets so that each proxy's memory can be read alone.
//!
//! Reads its spec as one JSON line on stdin, prints one `Ready` JSON line on stdout, and serves
//! until stdin is closed (then shuts down gracefully, flushing the gateway's audit log).
//! Logs to stderr at the binaries' levels; `BENCH_NODE_LOG` (a tracing filter, e.g. `h2=debug`)
//! replaces them.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use kms_pam_benches::node::{self, Ready, Role};
use tokio::io::{AsyncBufReadExt as _, BufReader};

fn main() -> ExitCode {
    let Some(role) = std::env::args().nth(1).as_deref().and_then(Role::parse) else {
        eprintln!(
            "usage: bench-node upstream|gateway|local-proxy|relay  (spec as one JSON line on stdin)"
        );
        return ExitCode::from(2);
    };
    // A subscriber as the binaries install one (the gateway logs at `info`, `kms-pam pam access`
    // at `warn`): without any, every span of h2 and hyper is also offered to the `log` crate
    // (tracing's `log` feature, which sqlx turns on), ~6k instructions per request that no
    // deployed process pays.
    let default = if role == Role::Gateway {
        "info"
    } else {
        "warn"
    };
    let filter = std::env::var("BENCH_NODE_LOG").unwrap_or_else(|_| default.to_owned());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .init();
    let runtime = match runtime_for(role) {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!(
                "bench-node {}: cannot start the runtime: {e}",
                role.as_str()
            );
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(role)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-node {}: {e:#}", role.as_str());
            ExitCode::FAILURE
        }
    }
}

/// The local proxy runs on one thread, as `kms-pam pam access` runs it (it serves one user);
/// `BENCH_LOCAL_RUNTIME=multi-thread` gives it tokio's multi-thread runtime instead, to compare.
/// The other roles run on the multi-thread runtime, as the gateway binary does.
fn runtime_for(role: Role) -> std::io::Result<tokio::runtime::Runtime> {
    let multi = role != Role::LocalProxy
        || std::env::var("BENCH_LOCAL_RUNTIME").is_ok_and(|v| v == "multi-thread");
    if multi {
        tokio::runtime::Runtime::new()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    }
}

async fn run(role: Role) -> anyhow::Result<()> {
    let mut stdin = BufReader::new(tokio::io::stdin());
    let mut spec = String::new();
    stdin.read_line(&mut spec).await.context("read the spec")?;
    let shutdown = async move {
        let _ = tokio::io::copy(&mut stdin, &mut tokio::io::sink()).await;
    };
    match role {
        Role::Upstream => node::run_upstream(parse(&spec)?, announce, shutdown).await,
        Role::Gateway => node::run_gateway(parse(&spec)?, announce, shutdown).await,
        Role::LocalProxy => node::run_local_proxy(parse(&spec)?, announce, shutdown).await,
        Role::Relay => node::run_relay(parse(&spec)?, announce, shutdown).await,
    }
}

fn parse<T: serde::de::DeserializeOwned>(spec: &str) -> anyhow::Result<T> {
    serde_json::from_str(spec).context("parse the spec")
}

fn announce(ready: &Ready) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, ready)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}
