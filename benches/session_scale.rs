//! Many sessions at once, and sessions opened back to back.
//!
//! Run with: `cargo bench -p kms-pam-benches --bench session_scale` (`BENCH_QUICK=1`: 100
//! sessions, shorter phases; `SCALE_SESSIONS=N` to pick N).
//!
//! (1) **One gateway, N concurrent sessions.** The gateway runs in its own process (`bench-node
//! gateway`, JSON-lines audit, as the gateway binary) in front of the stand-in API server. This
//! process plays N users' local proxies: N mTLS tunnels, each with its own session certificate,
//! each holding one watch open and sending a small list every few seconds (spread evenly). Read:
//! how fast the tunnels open, the gateway's memory per session (RSS with N tunnels and watches
//! open, less RSS idle, over N), p50/p99 of the periodic requests, the gateway's CPU meanwhile,
//! and whether every watch still delivers an event at the end.
//!
//! (2) **KMS opening sessions back to back.** A real KMS in-process (SQLite store) and the
//! library's `open_session` (what `kms-pam pam access` does: key and CSR, session, local proxy
//! with its own certificate, kubeconfig written): sessions per second and p50/p99 until the
//! kubeconfig is ready, each session closed before the next.
//!
//! Writes `target/bench/session_scale.json`. See docs/performance.md.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt as _, Empty};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use kms_pam::relay::RelayConnector;
use kms_pam::tls::PrivateKeyPem;
use kms_pam::transport::tls::TlsConnector;
use kms_pam::transport::GatewayTransport;
use kms_pam_benches::cpu::{CpuSampler, CpuShare};
use kms_pam_benches::fixtures::{LIST_QUERY, PODS_PATH};
use kms_pam_benches::node::{AuditSpec, GatewaySpec, RelaySpec, Role};
use kms_pam_benches::path::{UpstreamNode, GATEWAY_NAME};
use kms_pam_benches::pki::{self, SessionMaterial};
use kms_pam_benches::report::{self, Machine};
use kms_pam_benches::rss::{self, kib_to_mib};
use kms_pam_benches::spawn::NodeProcess;
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

#[path = "session_scale/kms.rs"]
mod kms;
#[path = "session_scale/print.rs"]
mod print;

use kms::kms_sessions;

const BENCH_NODE: &str = env!("CARGO_BIN_EXE_bench-node");

/// Tunnels being opened at once: users arrive together, but not all in the same instant.
pub(crate) const OPEN_CONCURRENCY: usize = 16;
/// The HTTP/2 windows kubectl (Go) opens: 4 MiB per stream, 1 GiB per connection.
const CLIENT_WINDOWS: (u32, u32) = (4 << 20, 1 << 30);

#[derive(Clone, Copy, Debug, Serialize)]
struct Settings {
    quick: bool,
    sessions: usize,
    /// Each session sends a small list this often.
    request_interval_s: f64,
    /// How long the periodic requests are measured.
    measure_s: f64,
    /// Sessions KMS opens back to back.
    kms_sessions: usize,
}

impl Settings {
    fn new(quick: bool) -> Self {
        let sessions = std::env::var("SCALE_SESSIONS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(if quick { 100 } else { 1_000 });
        Self {
            quick,
            sessions,
            request_interval_s: 3.0,
            measure_s: if quick { 6.0 } else { 30.0 },
            kms_sessions: if quick { 20 } else { 200 },
        }
    }
}

/// Part (1)'s figures.
#[derive(Clone, Debug, Serialize)]
struct GatewayScale {
    sessions: usize,
    tunnels_open_s: f64,
    tunnels_per_s: f64,
    tunnel_open_p50_ms: f64,
    tunnel_open_p99_ms: f64,
    idle_kb: u64,
    open_kb: u64,
    end_kb: u64,
    peak_kb: u64,
    kib_per_session: f64,
    requests: u64,
    errors: u64,
    request_p50_us: f64,
    request_p99_us: f64,
    cpu_cores: Vec<CpuShare>,
    gateway_cpu_us_per_request: f64,
    watches_delivered: usize,
    /// On the relayed run: the relay's memory.
    relay: Option<RelayMemory>,
}

/// A relay's memory with every session's tunnel through it.
#[derive(Clone, Debug, Serialize)]
struct RelayMemory {
    idle_kb: u64,
    open_kb: u64,
    kib_per_tunnel: f64,
}

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let settings = Settings::new(kms_pam_benches::quick_mode());
    println!("session_scale: {settings:?}");
    check_descriptors(settings.sessions)?;
    let gateway = gateway_scale(&settings, false).await?;
    let relayed = gateway_scale(&settings, true).await?;
    let kms = kms_sessions(settings.kms_sessions).await?;
    print::print(&gateway, &relayed, &kms);
    let json = serde_json::json!({
        "benchmark": "session_scale",
        "machine": Machine::describe(),
        "settings": settings,
        "gateway": gateway,
        "relayed": relayed,
        "kms": kms,
    });
    let written = report::write_json("session_scale.json", &json)?;
    println!("wrote {}", written.display());
    Ok(())
}

/// N tunnels take N descriptors here and N in the gateway (plus a few): the soft limit must
/// allow that. Raising it needs `setrlimit` (unsafe, which this workspace forbids), so say how.
fn check_descriptors(sessions: usize) -> anyhow::Result<()> {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse::<usize>().ok());
    match soft {
        Some(soft) if soft < sessions + 256 => bail!(
            "{sessions} tunnels need more than {soft} open files: run `ulimit -n {}` first \
             (at most `ulimit -Hn`)",
            sessions + 256
        ),
        _ => Ok(()),
    }
}

/// One session's tunnel, as its local proxy holds it.
struct Tunnel {
    sender: http2::SendRequest<Empty<Bytes>>,
}

/// Part (1), direct or with every tunnel through a relay (a third process).
async fn gateway_scale(settings: &Settings, relayed: bool) -> anyhow::Result<GatewayScale> {
    let n = settings.sessions;
    let exe = kms_pam_benches::node_exe(BENCH_NODE);
    let exe = exe.as_path();
    let upstream = UpstreamNode::start(exe, 1 << 20).await?;
    let made = Instant::now();
    let (material, relay_material, sessions) = pki::generate_with_relay(GATEWAY_NAME, n)?;
    println!("{n} session certificates in {:.1?}", made.elapsed());
    let relay = match relayed {
        true => {
            let spec = RelaySpec {
                tls: relay_material,
            };
            Some(NodeProcess::start(exe, Role::Relay, &spec).await?)
        }
        false => None,
    };
    let relay_idle = relay.as_ref().map(|r| rss::read(r.pid())).transpose()?;
    let audit = tempfile::tempdir()?;
    let spec = GatewaySpec {
        name: GATEWAY_NAME.into(),
        tls: material.clone(),
        sessions: sessions.iter().map(|s| s.session.clone()).collect(),
        upstream_url: upstream.url(),
        upstream_ca_pem: upstream.tls.ca_pem.clone(),
        token: upstream.token.clone(),
        audit: AuditSpec::JsonLines(audit.path().join("audit.jsonl")),
        relays: relay.iter().map(|r| r.ready.addr.to_string()).collect(),
    };
    let gateway = NodeProcess::start(exe, Role::Gateway, &spec).await?;
    let pid = gateway.pid();
    let target = Target {
        gateway: gateway.ready.addr.to_string(),
        relay: relay.as_ref().map(|r| r.ready.addr.to_string()),
    };
    let idle = rss::read(pid)?;
    if target.relay.is_some() {
        wait_for_relay_tunnel(&material.ca_pem, &sessions[0], &target).await?;
    }

    let opened = Instant::now();
    let (tunnels, open_times) = open_tunnels(&material.ca_pem, &sessions, &target).await?;
    let tunnels_open_s = opened.elapsed().as_secs_f64();
    println!("{n} tunnels open in {tunnels_open_s:.2} s");
    let delivered = Arc::new(AtomicUsize::new(0));
    let mut watches = JoinSet::new();
    for tunnel in &tunnels {
        let response = tunnel
            .sender
            .clone()
            .send_request(get(&format!("{PODS_PATH}?watch=true"))?)
            .await?;
        if !response.status().is_success() {
            bail!("a watch was refused: {}", response.status());
        }
        let delivered = delivered.clone();
        watches.spawn(async move {
            let mut body = response.into_body();
            while let Some(Ok(frame)) = body.frame().await {
                if frame.data_ref().is_some_and(|d| !d.is_empty()) {
                    delivered.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    // Let the gateway settle (buffers, audit writer) before reading its memory.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let open = rss::read(pid)?;
    let relay_memory = match (&relay, relay_idle) {
        (Some(relay), Some(idle)) => {
            let open = rss::read(relay.pid())?;
            Some(RelayMemory {
                idle_kb: idle.now_kb,
                open_kb: open.now_kb,
                kib_per_tunnel: open.now_kb.saturating_sub(idle.now_kb) as f64 / n as f64,
            })
        }
        _ => None,
    };
    println!(
        "{n} watches open; gateway RSS {:.1} MiB (idle {:.1})",
        kib_to_mib(open.now_kb),
        kib_to_mib(idle.now_kb)
    );

    let everyone = [
        ("client", std::process::id()),
        ("upstream", upstream.process.pid()),
        ("gateway", pid),
    ];
    let sampler = CpuSampler::start(&everyone)?;
    let periodic = periodic_requests(&tunnels, settings).await?;
    let cpu_cores = sampler.finish()?;
    let end = rss::read(pid)?;

    // Every watch is still live: one event each, through the gateway.
    let fire = Request::post("http://kms-pam.gateway/bench/fire").body(Empty::<Bytes>::new())?;
    let fired = tunnels[0].sender.clone().send_request(fire).await?;
    fired.into_body().collect().await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while delivered.load(Ordering::Relaxed) < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let watches_delivered = delivered.load(Ordering::Relaxed);
    let gateway_cores = cpu_cores
        .iter()
        .find(|c| c.role == "gateway")
        .map_or(0.0, |c| c.cores);
    drop(tunnels);
    watches.abort_all();
    gateway.stop().await?;
    if let Some(relay) = relay {
        relay.stop().await?;
    }
    upstream.process.stop().await?;

    let mut open_times = open_times;
    open_times.sort_unstable();
    Ok(GatewayScale {
        sessions: n,
        tunnels_open_s,
        tunnels_per_s: n as f64 / tunnels_open_s,
        tunnel_open_p50_ms: percentile(&open_times, 0.50) / 1e3,
        tunnel_open_p99_ms: percentile(&open_times, 0.99) / 1e3,
        idle_kb: idle.now_kb,
        open_kb: open.now_kb,
        end_kb: end.now_kb,
        peak_kb: end.peak_kb,
        kib_per_session: open.now_kb.saturating_sub(idle.now_kb) as f64 / n as f64,
        requests: periodic.requests,
        errors: periodic.errors,
        request_p50_us: percentile(&periodic.latencies_us, 0.50),
        request_p99_us: percentile(&periodic.latencies_us, 0.99),
        gateway_cpu_us_per_request: gateway_cores * settings.measure_s * 1e6
            / periodic.requests.max(1) as f64,
        cpu_cores,
        watches_delivered,
        relay: relay_memory,
    })
}

/// Where the bench's "local proxies" dial: the gateway, or a relay in front of it.
struct Target {
    gateway: String,
    relay: Option<String>,
}

impl Target {
    fn connector(
        &self,
        ca_pem: &str,
        session: &SessionMaterial,
    ) -> anyhow::Result<Box<dyn GatewayTransport>> {
        let key = PrivateKeyPem::new(session.key_pem.clone());
        let cert = &session.cert_pem;
        Ok(match &self.relay {
            None => Box::new(TlsConnector::from_pem(
                ca_pem,
                cert,
                &key,
                self.gateway.clone(),
            )?),
            Some(relay) => Box::new(RelayConnector::from_pem(
                ca_pem,
                cert,
                &key,
                GATEWAY_NAME,
                &self.gateway,
                vec![relay.clone()],
            )?),
        })
    }
}

/// Waits until the gateway's tunnel to the relay is up (the relay answers `gateway offline`
/// until then).
async fn wait_for_relay_tunnel(
    ca_pem: &str,
    session: &SessionMaterial,
    target: &Target,
) -> anyhow::Result<()> {
    let connector = target.connector(ca_pem, session)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match connector.connect().await {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() > deadline => bail!("the relay never held the gateway: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Opens one tunnel per session, [`OPEN_CONCURRENCY`] at a time; returns them in order and how
/// long each took (TCP, mutual TLS, HTTP/2 handshake), in microseconds.
async fn open_tunnels(
    ca_pem: &str,
    sessions: &[SessionMaterial],
    target: &Target,
) -> anyhow::Result<(Vec<Tunnel>, Vec<u64>)> {
    let gate = Arc::new(Semaphore::new(OPEN_CONCURRENCY));
    let mut opening = JoinSet::new();
    for (i, session) in sessions.iter().enumerate() {
        let connector = target.connector(ca_pem, session)?;
        let gate = gate.clone();
        opening.spawn(async move {
            let _permit = gate.acquire_owned().await?;
            let begun = Instant::now();
            let io = connector.connect().await?;
            let (sender, connection) = http2::Builder::new(TokioExecutor::new())
                .initial_stream_window_size(CLIENT_WINDOWS.0)
                .initial_connection_window_size(CLIENT_WINDOWS.1)
                .handshake(TokioIo::new(io))
                .await?;
            tokio::spawn(connection);
            let took = begun.elapsed().as_micros() as u64;
            anyhow::Ok((i, Tunnel { sender }, took))
        });
    }
    let mut tunnels: Vec<Option<Tunnel>> = (0..sessions.len()).map(|_| None).collect();
    let mut times = Vec::with_capacity(sessions.len());
    while let Some(done) = opening.join_next().await {
        let (i, tunnel, took) = done.context("tunnel task panicked")??;
        tunnels[i] = Some(tunnel);
        times.push(took);
    }
    Ok((tunnels.into_iter().flatten().collect(), times))
}

struct Periodic {
    requests: u64,
    errors: u64,
    latencies_us: Vec<u64>,
}

/// Every session sends a small list each `request_interval_s`, the sessions' first requests
/// spread evenly over one interval, for `measure_s`.
async fn periodic_requests(tunnels: &[Tunnel], settings: &Settings) -> anyhow::Result<Periodic> {
    let interval = Duration::from_secs_f64(settings.request_interval_s);
    let until = tokio::time::Instant::now() + Duration::from_secs_f64(settings.measure_s);
    let errors = Arc::new(AtomicU64::new(0));
    let mut workers = JoinSet::new();
    let n = tunnels.len().max(1) as u32;
    for (i, tunnel) in tunnels.iter().enumerate() {
        let sender = tunnel.sender.clone();
        let errors = errors.clone();
        let offset = interval * i as u32 / n;
        workers.spawn(async move {
            let start = tokio::time::Instant::now() + offset;
            let mut ticks = tokio::time::interval_at(start, interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut latencies = Vec::new();
            loop {
                ticks.tick().await;
                if tokio::time::Instant::now() >= until {
                    return latencies;
                }
                let begun = Instant::now();
                match small_list(sender.clone()).await {
                    Ok(()) => latencies.push(begun.elapsed().as_micros() as u64),
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
    }
    let mut latencies_us = Vec::new();
    while let Some(done) = workers.join_next().await {
        latencies_us.extend(done.context("request worker panicked")?);
    }
    latencies_us.sort_unstable();
    Ok(Periodic {
        requests: latencies_us.len() as u64,
        errors: errors.load(Ordering::Relaxed),
        latencies_us,
    })
}

async fn small_list(mut sender: http2::SendRequest<Empty<Bytes>>) -> anyhow::Result<()> {
    let response = sender
        .send_request(get(&format!("{PODS_PATH}?{LIST_QUERY}"))?)
        .await?;
    if !response.status().is_success() {
        bail!("status {}", response.status());
    }
    response.into_body().collect().await?;
    Ok(())
}

/// A GET in the form the local proxy sends through the tunnel.
fn get(path_and_query: &str) -> anyhow::Result<Request<Empty<Bytes>>> {
    Ok(
        Request::get(format!("http://kms-pam.gateway{path_and_query}"))
            .header(
                "user-agent",
                "kubectl/v1.32.0 (linux/amd64) kubernetes/70d3cc9",
            )
            .header("accept", "application/json")
            .body(Empty::new())?,
    )
}

/// The `q` quantile of sorted samples.
fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64
}
