//! The proxy path side by side with the alternatives, under the same client load:
//! (a) the API server directly, (b) `kubectl proxy`, (c) the kms-pam path (local proxy → mTLS
//! tunnel → gateway) auditing to a JSON-lines file, (d) the same with a null audit sink, (e)
//! (c) with the gateway reached through a relay (local proxy → relay ← gateway, a third
//! process; the tunnel inside unchanged).
//!
//! Run with: `cargo bench -p kms-pam-benches --bench proxy_path` (`BENCH_QUICK=1` for a smoke
//! run). Prints a table, the ratios the goals are stated in, and writes
//! `target/bench/proxy_path.json`. `BENCH_PHASES=small1,small32,large` picks phases (for
//! profiling). See docs/performance.md.

use std::time::Duration;

use kms_pam_benches::cpu::{CpuSampler, CpuShare};
use kms_pam_benches::fixtures::{CONFIGMAPS_PATH, LARGE_LIST_BYTES, LIST_QUERY, PODS_PATH};
use kms_pam_benches::load::{self, Endpoint, Load, LoadResult, Phase};
use kms_pam_benches::path::{Audit, KmsPath, Reach, UpstreamNode, HTTP1};
use kms_pam_benches::report::{self, Machine};
use kms_pam_benches::rss;
use kms_pam_benches::spawn::{find_kubectl, KubectlProxy};
use serde::Serialize;

#[path = "proxy_path/goals.rs"]
mod goals;

const BENCH_NODE: &str = env!("CARGO_BIN_EXE_bench-node");

/// `BENCH_REQUESTS=N`: each small-list phase sends N requests in all (after one warm-up request
/// per connection) instead of running for a time, and the large-list phase N lists;
/// `benches/instructions.sh` uses it to count instructions per request.
fn fixed_requests() -> Option<u64> {
    std::env::var("BENCH_REQUESTS").ok()?.parse().ok()
}

/// A proxy's memory may grow by at most this much while streaming large lists and still count
/// as flat: a quarter of one list, so that buffering a whole body cannot pass.
const FLAT_GROWTH_KB: u64 = (LARGE_LIST_BYTES / 4 / 1024) as u64;

/// Phase lengths.
#[derive(Clone, Copy, Debug, Serialize)]
struct Settings {
    quick: bool,
    small_warmup_s: f64,
    small_measure_s: f64,
    large_warmup_requests: u64,
    large_measure_requests: u64,
}

impl Settings {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                quick,
                small_warmup_s: 0.2,
                small_measure_s: 1.0,
                large_warmup_requests: 1,
                large_measure_requests: 3,
            }
        } else {
            Self {
                quick,
                small_warmup_s: 1.0,
                small_measure_s: 5.0,
                large_warmup_requests: 2,
                large_measure_requests: 15,
            }
        }
    }

    fn small(&self, connections: usize) -> Load {
        let (warmup, measure) = match fixed_requests() {
            // For instruction counts: the same work in every run, whatever the machine's speed.
            Some(total) => (
                Phase::Requests(1),
                Phase::Requests((total / connections as u64).max(1)),
            ),
            None => (
                Phase::For(Duration::from_secs_f64(self.small_warmup_s)),
                Phase::For(Duration::from_secs_f64(self.small_measure_s)),
            ),
        };
        Load {
            path: format!("{PODS_PATH}?{LIST_QUERY}"),
            connections,
            warmup,
            measure,
        }
    }

    fn large(&self) -> Load {
        Load {
            path: format!("{CONFIGMAPS_PATH}?{LIST_QUERY}"),
            connections: 1,
            warmup: Phase::Requests(self.large_warmup_requests),
            measure: Phase::Requests(fixed_requests().unwrap_or(self.large_measure_requests)),
        }
    }
}

/// One process in front of the API server.
#[derive(Clone, Debug, Serialize)]
struct ProcessMemory {
    role: &'static str,
    idle_kb: u64,
    /// Lifetime peak (`VmHWM`) at the end of the target's runs.
    peak_kb: u64,
    /// Resident before the large-list phase, and its peak during that phase.
    large_before_kb: u64,
    large_peak_kb: u64,
}

impl ProcessMemory {
    fn large_growth_kb(&self) -> u64 {
        self.large_peak_kb.saturating_sub(self.large_before_kb)
    }
}

/// One phase: the load's result and how busy each process was meanwhile.
#[derive(Clone, Debug, Serialize)]
struct Measured {
    #[serde(flatten)]
    load: LoadResult,
    cpu_cores: Vec<CpuShare>,
}

impl std::ops::Deref for Measured {
    type Target = LoadResult;

    fn deref(&self) -> &LoadResult {
        &self.load
    }
}

/// Runs phase `name`, reading the CPU time of `everyone` around it.
async fn phase(
    name: &str,
    endpoint: &Endpoint,
    load: &Load,
    everyone: &[(&'static str, u32)],
) -> anyhow::Result<Measured> {
    let sampler = CpuSampler::start(everyone)?;
    let load = load::run_phase(name, endpoint, load).await?;
    let cpu_cores = sampler.finish()?;
    let busy: Vec<String> = cpu_cores
        .iter()
        .map(|c| format!("{} {:.2}", c.role, c.cores))
        .collect();
    println!(
        "  {name}: {}; cores busy: {}",
        summary(&load),
        busy.join(", ")
    );
    Ok(Measured { load, cpu_cores })
}

/// Everything measured for one target.
#[derive(Clone, Debug, Serialize)]
struct TargetResult {
    key: &'static str,
    name: &'static str,
    small_1: Measured,
    small_32: Measured,
    large: Measured,
    processes: Vec<ProcessMemory>,
    audit_events_written: Option<usize>,
}

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let settings = Settings::new(kms_pam_benches::quick_mode());
    let exe = kms_pam_benches::node_exe(BENCH_NODE);
    let exe = exe.as_path();
    println!("proxy_path: {settings:?}");
    let upstream = UpstreamNode::start(exe, LARGE_LIST_BYTES).await?;
    let context = (&settings, upstream.process.pid());
    let mut results = Vec::new();

    println!("(a) direct");
    let direct = upstream.endpoint(HTTP1)?;
    results.push(measure(("a", "direct"), &direct, &[], context).await?);
    if let Some(result) = kubectl_proxy(&upstream, context).await? {
        results.push(result);
    }
    for (key, name, audit, reach) in [
        (
            "c",
            "kms-pam, JSON-lines audit",
            Audit::JsonLines,
            Reach::Direct,
        ),
        ("d", "kms-pam, null audit", Audit::Null, Reach::Direct),
        (
            "e",
            "kms-pam via a relay, JSON-lines audit",
            Audit::JsonLines,
            Reach::Relayed,
        ),
    ] {
        println!("({key}) {name}");
        let path = KmsPath::start_reaching(exe, &upstream, audit, reach).await?;
        let endpoint = path.endpoint(HTTP1)?;
        let mut result = measure((key, name), &endpoint, &path.processes(), context).await?;
        result.audit_events_written = path.stop().await?;
        results.push(result);
    }
    let sizes = upstream.process.ready.body_sizes.unwrap_or_default();
    upstream.process.stop().await?;

    let goals = goals::goals(&results);
    goals::print_results(&results, &goals, sizes);
    let json = serde_json::json!({
        "benchmark": "proxy_path",
        "machine": Machine::describe(),
        "settings": settings,
        "targets": results,
        "ratios": goals::ratios(&results),
        "goals": goals,
        "most_foreign_load_cores": goals::most_foreign_load(&results),
    });
    let written = report::write_json("proxy_path.json", &json)?;
    println!("wrote {}", written.display());
    Ok(())
}

/// Target (b), or `None` with a notice when there is no kubectl.
async fn kubectl_proxy(
    upstream: &UpstreamNode,
    context: (&Settings, u32),
) -> anyhow::Result<Option<TargetResult>> {
    let Some(kubectl) = find_kubectl() else {
        println!("(b) notice: kubectl not found (set KUBECTL or PATH); skipping this baseline");
        return Ok(None);
    };
    println!("(b) kubectl proxy ({})", kubectl.display());
    let (url, ca, token) = (upstream.url(), &upstream.tls.ca_pem, &upstream.token);
    let proxy = KubectlProxy::start(&kubectl, &url, ca, token).await?;
    let endpoint = Endpoint {
        addr: proxy.addr,
        tls: None,
        bearer: None,
    };
    let procs = [("kubectl proxy", proxy.pid())];
    let result = measure(("b", "kubectl proxy"), &endpoint, &procs, context).await?;
    proxy.stop().await?;
    Ok(Some(result))
}

async fn measure(
    (key, name): (&'static str, &'static str),
    endpoint: &Endpoint,
    procs: &[(&'static str, u32)],
    (settings, upstream_pid): (&Settings, u32),
) -> anyhow::Result<TargetResult> {
    let mut everyone = vec![("client", std::process::id()), ("upstream", upstream_pid)];
    everyone.extend_from_slice(procs);
    let idle = procs
        .iter()
        .map(|(_, pid)| rss::read(*pid))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let small_1 = phase("small1", endpoint, &settings.small(1), &everyone).await?;
    let small_32 = phase("small32", endpoint, &settings.small(32), &everyone).await?;
    let before = procs
        .iter()
        .map(|(_, pid)| rss::read(*pid))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for (_, pid) in procs {
        rss::reset_peak(*pid)?;
    }
    let large = phase("large", endpoint, &settings.large(), &everyone).await?;
    let mut processes = Vec::new();
    for (i, (role, pid)) in procs.iter().enumerate() {
        let after = rss::read(*pid)?;
        processes.push(ProcessMemory {
            role,
            idle_kb: idle[i].now_kb,
            peak_kb: after.peak_kb.max(before[i].peak_kb),
            large_before_kb: before[i].now_kb,
            large_peak_kb: after.peak_kb,
        });
    }
    Ok(TargetResult {
        key,
        name,
        small_1,
        small_32,
        large,
        processes,
        audit_events_written: None,
    })
}

fn summary(r: &LoadResult) -> String {
    format!(
        "{:.0} req/s, {:.0} MB/s, p50 {:.0} µs, p99 {:.0} µs ({} requests, {} failed)",
        r.requests_per_s, r.mb_per_s, r.p50_us, r.p99_us, r.requests, r.errors
    )
}
