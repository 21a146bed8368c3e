//! Support for the kms-pam benchmarks; the benchmarks themselves are the `[[bench]]` targets
//! (`proxy_path`, `watch_streams`, `session_scale`, `hot_path`, `console_pages`), and docs/performance.md says how to run them.
//!
//! Each process under test runs on its own, so that its memory can be read from `/proc`:
//! the bench target is the client, and it spawns `bench-node` once per role (the fast API server
//! stand-in, the gateway, the local proxy) and `kubectl proxy` as the baseline.
//!
//! - [`fixtures`]: the bodies the stand-in API server serves (pod list, large configmap list,
//!   watch events);
//! - [`upstream`]: that stand-in, a minimal HTTPS server built for speed, not fidelity;
//! - [`pki`]: the certificates of a path, made the way KMS makes them;
//! - [`node`]: what each `bench-node` role runs; [`spawn`]: starting and stopping those
//!   processes and `kubectl proxy`; [`path`]: the stand-in API server and the kms-pam path;
//! - [`load`]: the HTTP/1.1 load generator; [`watch`]: many watches over one HTTP/2 connection;
//! - [`kms`]: a KMS world (gateway, resource, account) for the control-plane benchmarks;
//! - [`rss`]: resident memory of a process; [`cpu`]: its CPU time; [`report`]: tables, goals
//!   and JSON;
//! - [`pg`]: a throwaway PostgreSQL cluster (`store_engines`).

pub mod cpu;
pub mod fixtures;
pub mod kms;
pub mod load;
pub mod node;
pub mod path;
pub mod pg;
pub mod pki;
pub mod report;
pub mod rss;
pub mod spawn;
pub mod upstream;
pub mod watch;

/// Whether `BENCH_QUICK` asks for the short smoke-test variant of a benchmark.
pub fn quick_mode() -> bool {
    std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Where results are written: `$CARGO_TARGET_DIR/bench`, or the workspace's `target/bench`.
pub fn output_dir() -> std::path::PathBuf {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = manifest.parent().unwrap_or(manifest);
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace.join("target"), std::path::PathBuf::from)
        .join("bench")
}

/// The `bench-node` binary to spawn: `$BENCH_NODE_EXE` if set (e.g. a copy built from an earlier
/// commit, to compare before and after in one sitting), else `built`, the one Cargo built.
pub fn node_exe(built: &str) -> std::path::PathBuf {
    std::env::var_os("BENCH_NODE_EXE").map_or_else(|| built.into(), std::path::PathBuf::from)
}
