//! The tables `session_scale` prints.

use kms_pam_benches::report::Table;
use kms_pam_benches::rss::kib_to_mib;

use super::kms::KmsSessions;
use super::{GatewayScale, OPEN_CONCURRENCY};

pub(crate) fn print(g: &GatewayScale, relayed: &GatewayScale, k: &KmsSessions) {
    gateway_table("gateway, concurrent sessions", g);
    gateway_table("the same through a relay", relayed);
    kms_table(k);
}

fn gateway_table(title: &str, g: &GatewayScale) {
    let mut table = Table::new([title, "value"]);
    let cores = g
        .cpu_cores
        .iter()
        .map(|c| format!("{} {:.2}", c.role, c.cores))
        .collect::<Vec<_>>()
        .join(", ");
    let rows = [
        (
            "sessions (tunnel + certificate + watch each)",
            g.sessions.to_string(),
        ),
        (
            "tunnels opened",
            format!(
                "{:.0}/s ({OPEN_CONCURRENCY} at a time); p50 {:.1} ms, p99 {:.1} ms",
                g.tunnels_per_s, g.tunnel_open_p50_ms, g.tunnel_open_p99_ms
            ),
        ),
        (
            "gateway RSS idle / open / after requests",
            format!(
                "{:.1} / {:.1} / {:.1} MiB",
                kib_to_mib(g.idle_kb),
                kib_to_mib(g.open_kb),
                kib_to_mib(g.end_kb)
            ),
        ),
        (
            "memory per session",
            format!("{:.1} KiB", g.kib_per_session),
        ),
        (
            "periodic small lists",
            format!("{} ({} failed)", g.requests, g.errors),
        ),
        (
            "latency p50 / p99",
            format!("{:.0} / {:.0} µs", g.request_p50_us, g.request_p99_us),
        ),
        ("cores busy", cores),
        (
            "gateway CPU per request",
            format!("{:.0} µs", g.gateway_cpu_us_per_request),
        ),
        (
            "watches delivering at the end",
            format!("{} of {}", g.watches_delivered, g.sessions),
        ),
    ];
    for (name, value) in rows {
        table.row([name.to_owned(), value]);
    }
    if let Some(relay) = &g.relay {
        table.row([
            "relay RSS idle / open".to_owned(),
            format!(
                "{:.1} / {:.1} MiB",
                kib_to_mib(relay.idle_kb),
                kib_to_mib(relay.open_kb)
            ),
        ]);
        table.row([
            "relay memory per tunnel".to_owned(),
            format!("{:.1} KiB", relay.kib_per_tunnel),
        ]);
    }
    println!("\n{}", table.render());
}

fn kms_table(k: &KmsSessions) {
    let mut table = Table::new(["KMS, sessions back to back", "value"]);
    let rows = [
        ("sessions opened and closed", k.sessions.to_string()),
        ("open + close cycles", format!("{:.1}/s", k.cycle_per_s)),
        (
            "opens (1 / mean open time)",
            format!("{:.1}/s", k.open_per_s),
        ),
        (
            "open until kubeconfig ready, p50 / p99",
            format!("{:.1} / {:.1} ms", k.open_p50_ms, k.open_p99_ms),
        ),
        ("close, p50", format!("{:.1} ms", k.close_p50_ms)),
    ];
    for (name, value) in rows {
        table.row([name.to_owned(), value]);
    }
    println!("{}", table.render());
}
