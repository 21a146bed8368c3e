//! The goals of the issue, the ratios they are stated in, and the printed report.

use kms_pam_benches::cpu::OTHERS;
use kms_pam_benches::report::{self, Goal, Table};
use kms_pam_benches::rss::kib_to_mib;
use serde::Serialize;

use super::{ProcessMemory, TargetResult, FLAT_GROWTH_KB};

pub(crate) fn find<'a>(results: &'a [TargetResult], key: &str) -> Option<&'a TargetResult> {
    results.iter().find(|r| r.key == key)
}

impl TargetResult {
    fn errors(&self) -> u64 {
        self.small_1.errors + self.small_32.errors + self.large.errors
    }
}

/// The ratios the goals are stated in; `None` where a target is missing.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub(crate) struct Ratios {
    throughput_c_over_b: Option<f64>,
    added_p50_c_over_b: Option<f64>,
    large_c_over_a: Option<f64>,
    large_c_over_b: Option<f64>,
    audit_c_over_d: Option<f64>,
    large_memory_flat: Option<bool>,
    /// The relayed path beside the direct one (same audit): what the relay costs.
    relayed_throughput_e_over_c: Option<f64>,
    relayed_p50_e_over_c: Option<f64>,
    relayed_large_e_over_c: Option<f64>,
    relayed_large_memory_flat: Option<bool>,
}

pub(crate) fn ratios(results: &[TargetResult]) -> Ratios {
    let (a, b, c, d, e) = (
        find(results, "a"),
        find(results, "b"),
        find(results, "c"),
        find(results, "d"),
        find(results, "e"),
    );
    let flat = |r: &TargetResult| {
        r.processes
            .iter()
            .all(|p| p.large_growth_kb() <= FLAT_GROWTH_KB)
    };
    let throughput = |r: &TargetResult| r.small_32.requests_per_s;
    let p50 = |r: &TargetResult| r.small_1.p50_us;
    Ratios {
        throughput_c_over_b: c.zip(b).map(|(c, b)| throughput(c) / throughput(b)),
        added_p50_c_over_b: a
            .zip(b)
            .zip(c)
            .map(|((a, b), c)| (p50(c) - p50(a)) / (p50(b) - p50(a))),
        large_c_over_a: c.zip(a).map(|(c, a)| c.large.mb_per_s / a.large.mb_per_s),
        large_c_over_b: c.zip(b).map(|(c, b)| c.large.mb_per_s / b.large.mb_per_s),
        audit_c_over_d: c.zip(d).map(|(c, d)| throughput(c) / throughput(d)),
        large_memory_flat: c.map(flat),
        relayed_throughput_e_over_c: e.zip(c).map(|(e, c)| throughput(e) / throughput(c)),
        relayed_p50_e_over_c: e.zip(c).map(|(e, c)| p50(e) / p50(c)),
        relayed_large_e_over_c: e.zip(c).map(|(e, c)| e.large.mb_per_s / c.large.mb_per_s),
        relayed_large_memory_flat: e.map(flat),
    }
}

pub(crate) fn goals(results: &[TargetResult]) -> Vec<Goal> {
    let r = ratios(results);
    vec![
        Goal::ratio(
            "throughput, small list, 32 conns",
            "(c) >= 2.0 x (b)",
            r.throughput_c_over_b,
            2.0,
            false,
        ),
        Goal::ratio(
            "latency added, 1 conn, p50",
            "(c)-(a) <= (b)-(a)",
            r.added_p50_c_over_b,
            1.0,
            true,
        ),
        Goal::ratio(
            "large list throughput vs direct",
            "(c) >= 0.8 x (a)",
            r.large_c_over_a,
            0.8,
            false,
        ),
        Goal::ratio(
            "large list throughput vs kubectl proxy",
            "(c) >= 1.0 x (b)",
            r.large_c_over_b,
            1.0,
            false,
        ),
        memory_goal(results, r.large_memory_flat),
        Goal::ratio(
            "auditing cost, 32 conns",
            "(c) >= 0.9 x (d)",
            r.audit_c_over_d,
            0.9,
            false,
        ),
        answered_goal(results),
    ]
}

fn memory_goal(results: &[TargetResult], flat: Option<bool>) -> Goal {
    let growth = find(results, "c").map(|c| {
        let each = c
            .processes
            .iter()
            .map(|p| format!("{} +{:.1} MiB", p.role, kib_to_mib(p.large_growth_kb())));
        each.collect::<Vec<_>>().join(", ")
    });
    Goal {
        name: "large list memory".into(),
        requirement: format!(
            "each proxy grows <= {:.0} MiB while streaming",
            kib_to_mib(FLAT_GROWTH_KB)
        ),
        measured: growth.unwrap_or_else(|| "n/a".into()),
        met: flat,
    }
}

fn answered_goal(results: &[TargetResult]) -> Goal {
    let kms: Vec<&TargetResult> = ["c", "d"].iter().filter_map(|k| find(results, k)).collect();
    let failed = kms
        .iter()
        .map(|r| format!("({}) {} failed", r.key, r.errors()));
    Goal {
        name: "every request answered".into(),
        requirement: "no failed request through (c) or (d)".into(),
        measured: failed.collect::<Vec<_>>().join(", "),
        met: Some(kms.iter().all(|r| r.errors() == 0)),
    }
}

pub(crate) fn print_results(
    results: &[TargetResult],
    goals: &[Goal],
    (small, large): (usize, usize),
) {
    println!(
        "\nsmall list {small} B, large list {:.1} MB; latencies in µs; proxy RSS in MiB \
         (idle / peak / growth while streaming the large list)",
        large as f64 / 1e6
    );
    println!("{}", results_table(results));
    println!(
        "CPU cores kept busy (`others`: the rest of the machine)\n{}",
        cpu_table(results)
    );
    for r in results {
        if let Some(events) = r.audit_events_written {
            let requests = r.small_1.requests + r.small_32.requests + r.large.requests;
            println!(
                "({}) audit events written: {events} (for {requests} measured requests plus warm-up)",
                r.key
            );
        }
    }
    println!("\n{}", report::goals_table(goals));
    let r = ratios(results);
    if let (Some(t), Some(p), Some(l)) = (
        r.relayed_throughput_e_over_c,
        r.relayed_p50_e_over_c,
        r.relayed_large_e_over_c,
    ) {
        println!(
            "relayed (e) over direct (c): 32c req/s x{t:.2}, 1c p50 x{p:.2}, large MB/s x{l:.2}; \
             memory flat while streaming: {}",
            r.relayed_large_memory_flat.unwrap_or(false)
        );
    }
    let others = most_foreign_load(results);
    if others > DISTURBED_CORES {
        println!(
            "warning: other processes kept up to {others:.2} cores busy during a phase; \
             these results are disturbed, run again on a quiet machine"
        );
    }
}

/// Foreign CPU load above which a run is reported as disturbed.
const DISTURBED_CORES: f64 = 0.2;

/// The most cores other processes of the machine used during any phase.
pub(crate) fn most_foreign_load(results: &[TargetResult]) -> f64 {
    results
        .iter()
        .flat_map(|r| [&r.small_1, &r.small_32, &r.large])
        .flat_map(|m| m.cpu_cores.iter())
        .filter(|c| c.role == OTHERS)
        .map(|c| c.cores)
        .fold(0.0, f64::max)
}

fn results_table(results: &[TargetResult]) -> String {
    let mut table = Table::new([
        "target",
        "1c req/s",
        "1c p50",
        "1c p99",
        "32c req/s",
        "32c p50",
        "32c p99",
        "large MB/s",
        "failed",
        "proxy RSS",
    ]);
    for r in results {
        table.row([
            format!("({}) {}", r.key, r.name),
            format!("{:.0}", r.small_1.requests_per_s),
            format!("{:.0}", r.small_1.p50_us),
            format!("{:.0}", r.small_1.p99_us),
            format!("{:.0}", r.small_32.requests_per_s),
            format!("{:.0}", r.small_32.p50_us),
            format!("{:.0}", r.small_32.p99_us),
            format!("{:.0}", r.large.mb_per_s),
            r.errors().to_string(),
            memory_cell(&r.processes),
        ]);
    }
    table.render()
}

fn memory_cell(processes: &[ProcessMemory]) -> String {
    if processes.is_empty() {
        return "-".into();
    }
    let cells = processes.iter().map(|p| {
        format!(
            "{} {:.1}/{:.1}/+{:.1}",
            p.role,
            kib_to_mib(p.idle_kb),
            kib_to_mib(p.peak_kb),
            kib_to_mib(p.large_growth_kb())
        )
    });
    cells.collect::<Vec<_>>().join("; ")
}

fn cpu_table(results: &[TargetResult]) -> String {
    let mut table = Table::new(["target", "phase", "cores busy per process", "total (ours)"]);
    for r in results {
        for (phase, measured) in [("small, 32c", &r.small_32), ("large", &r.large)] {
            let total: f64 = measured
                .cpu_cores
                .iter()
                .filter(|c| c.role != OTHERS)
                .map(|c| c.cores)
                .sum();
            let each = measured
                .cpu_cores
                .iter()
                .map(|c| format!("{} {:.2}", c.role, c.cores));
            table.row([
                format!("({})", r.key),
                phase.to_owned(),
                each.collect::<Vec<_>>().join(", "),
                format!("{total:.2}"),
            ]);
        }
    }
    table.render()
}
