//! Many open watches through one local proxy and one gateway, each in its own process: how much
//! memory each proxy spends per open stream, and whether every stream delivers its event.
//!
//! The client holds all watches over one HTTP/2 connection to the local proxy (as kubectl does
//! over HTTPS), the local proxy multiplexes them over its one tunnel connection, and the gateway
//! over one HTTP/2 connection to the API server; so 10,000 streams take three sockets, not
//! 30,000, and no file-descriptor limit needs raising.
//!
//! Run with: `cargo bench -p kms-pam-benches --bench watch_streams` (`BENCH_QUICK=1` for a smoke
//! run). Writes `target/bench/watch_streams.json`. See docs/performance.md.

use std::path::Path;
use std::time::Duration;

use http::Method;
use kms_pam_benches::fixtures::{LIST_QUERY, PODS_PATH, WATCH_QUERY};
use kms_pam_benches::load::{self, Load, Phase};
use kms_pam_benches::path::{Audit, KmsPath, UpstreamNode, HTTP1, HTTP2};
use kms_pam_benches::report::{self, Goal, Machine, Table};
use kms_pam_benches::rss::{self, kib_to_mib, Rss};
use kms_pam_benches::watch::{Counts, Watches};
use serde::Serialize;

const BENCH_NODE: &str = env!("CARGO_BIN_EXE_bench-node");

/// How long opening all watches, or delivering all events, may take before the run is judged.
const WAIT_LIMIT: Duration = Duration::from_secs(120);

/// The goal: at most this many KiB of resident memory per open stream, in each proxy.
const GOAL_KB_PER_STREAM: f64 = 10.0;

/// One process's memory in one run.
#[derive(Clone, Debug, Serialize)]
struct ProcessMemory {
    role: &'static str,
    idle: Rss,
    open: Rss,
    after_delivery: Rss,
    /// (open − idle) / streams.
    kb_per_stream: f64,
}

/// One run with `streams` watches.
#[derive(Clone, Debug, Serialize)]
struct WatchRun {
    streams: usize,
    opened: usize,
    seen_open_upstream: usize,
    events_sent: usize,
    delivered: usize,
    failed: usize,
    open_s: f64,
    deliver_s: f64,
    processes: Vec<ProcessMemory>,
}

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let quick = kms_pam_benches::quick_mode();
    let sizes: &[usize] = if quick {
        &[100, 1_000]
    } else {
        &[1_000, 10_000]
    };
    let exe = Path::new(BENCH_NODE);
    let upstream = UpstreamNode::start(exe, 1024).await?;
    let mut runs = Vec::new();
    for &streams in sizes {
        println!("{streams} watches");
        runs.push(run_once(exe, &upstream, streams).await?);
    }
    upstream.process.stop().await?;

    println!("\n{}", runs_table(&runs));
    let goals = goals(&runs);
    println!("{}", report::goals_table(&goals));
    let json = serde_json::json!({
        "benchmark": "watch_streams",
        "machine": Machine::describe(),
        "quick": quick,
        "runs": runs,
        "goals": goals,
    });
    println!(
        "wrote {}",
        report::write_json("watch_streams.json", &json)?.display()
    );
    Ok(())
}

async fn run_once(exe: &Path, upstream: &UpstreamNode, streams: usize) -> anyhow::Result<WatchRun> {
    let path = KmsPath::start(exe, upstream, Audit::JsonLines).await?;
    warm_up(&path).await?;
    let procs = path.processes();
    let idle = read_all(&procs)?;

    let mut watches = Watches::open(
        &path.endpoint(HTTP2)?,
        &format!("{PODS_PATH}?{WATCH_QUERY}"),
        streams,
    )
    .await?;
    let (opened, open_time) = watches.wait_opened(WAIT_LIMIT).await;
    println!(
        "  opened {}/{streams} in {:.2} s",
        opened.opened,
        open_time.as_secs_f64()
    );
    let direct = upstream.endpoint(HTTP1)?;
    let seen_open_upstream = count(&direct, Method::GET, "/bench/watchers", "open").await?;
    let open = read_all(&procs)?;

    let events_sent = count(&direct, Method::POST, "/bench/fire", "sent").await?;
    println!("  upstream saw {seen_open_upstream} open, sent {events_sent} events");
    let (delivered, deliver_time) = watches.wait_delivered(WAIT_LIMIT).await;
    println!(
        "  delivered {}/{streams} in {:.2} s",
        delivered.delivered,
        deliver_time.as_secs_f64()
    );
    let after_delivery = read_all(&procs)?;
    let Counts {
        opened,
        delivered,
        failed,
    } = delivered;
    watches.close().await;
    path.stop().await?;

    let readings = [idle, open, after_delivery];
    Ok(WatchRun {
        streams,
        opened,
        seen_open_upstream,
        events_sent,
        delivered,
        failed,
        open_s: open_time.as_secs_f64(),
        deliver_s: deliver_time.as_secs_f64(),
        processes: memory(&procs, &readings, streams),
    })
}

/// Each process's memory from its readings idle, with the watches open, and after delivery.
fn memory(
    procs: &[(&'static str, u32)],
    [idle, open, after_delivery]: &[Vec<Rss>; 3],
    streams: usize,
) -> Vec<ProcessMemory> {
    procs
        .iter()
        .enumerate()
        .map(|(i, (role, _))| ProcessMemory {
            role,
            idle: idle[i],
            open: open[i],
            after_delivery: after_delivery[i],
            kb_per_stream: open[i].now_kb.saturating_sub(idle[i].now_kb) as f64 / streams as f64,
        })
        .collect()
}

/// Establishes the tunnel and the gateway's upstream connection before the idle reading.
async fn warm_up(path: &KmsPath) -> anyhow::Result<()> {
    let warm = Load {
        path: format!("{PODS_PATH}?{LIST_QUERY}"),
        connections: 1,
        warmup: Phase::Requests(1),
        measure: Phase::Requests(10),
    };
    load::run(&path.endpoint(HTTP1)?, &warm).await?;
    Ok(())
}

fn read_all(procs: &[(&'static str, u32)]) -> anyhow::Result<Vec<Rss>> {
    procs.iter().map(|(_, pid)| rss::read(*pid)).collect()
}

/// Calls a control endpoint of the stand-in API server and reads one number from its answer.
async fn count(
    endpoint: &load::Endpoint,
    method: Method,
    path: &str,
    field: &str,
) -> anyhow::Result<usize> {
    let (status, body) = load::fetch(endpoint, method, path).await?;
    anyhow::ensure!(status.is_success(), "{path}: {status}");
    let value: serde_json::Value = serde_json::from_slice(&body)?;
    let n = value[field]
        .as_u64()
        .ok_or_else(|| anyhow::anyhow!("{path}: no {field}"))?;
    Ok(usize::try_from(n)?)
}

fn goals(runs: &[WatchRun]) -> Vec<Goal> {
    let Some(largest) = runs.iter().max_by_key(|r| r.streams) else {
        return Vec::new();
    };
    let mut goals: Vec<Goal> = largest
        .processes
        .iter()
        .map(|p| {
            Goal::ratio(
                &format!("{} watches: {} KiB/stream", largest.streams, p.role),
                &format!("<= {GOAL_KB_PER_STREAM} KiB per stream above idle (at 10,000)"),
                Some(p.kb_per_stream),
                GOAL_KB_PER_STREAM,
                true,
            )
        })
        .collect();
    goals.push(Goal {
        name: format!("{} watches: events delivered", largest.streams),
        requirement: "all streams deliver the event".into(),
        measured: format!(
            "{}/{} (peak {:.1} MiB local proxy)",
            largest.delivered,
            largest.streams,
            kib_to_mib(
                largest
                    .processes
                    .first()
                    .map_or(0, |p| p.after_delivery.peak_kb)
            )
        ),
        met: Some(largest.delivered == largest.streams),
    });
    goals
}

fn runs_table(runs: &[WatchRun]) -> String {
    let mut table = Table::new([
        "streams",
        "delivered",
        "open s",
        "deliver s",
        "process",
        "idle MiB",
        "open MiB",
        "KiB/stream",
    ]);
    for r in runs {
        for p in &r.processes {
            table.row([
                r.streams.to_string(),
                format!("{}/{}", r.delivered, r.streams),
                format!("{:.2}", r.open_s),
                format!("{:.2}", r.deliver_s),
                p.role.to_owned(),
                format!("{:.1}", p.idle.now_mib()),
                format!("{:.1}", p.open.now_mib()),
                format!("{:.1}", p.kb_per_stream),
            ]);
        }
    }
    table.render()
}
