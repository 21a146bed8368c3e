//! A throwaway PostgreSQL cluster for tests: `initdb` in a temporary directory, `pg_ctl start` on
//! a free port (Unix socket in the same directory), one per test binary, each test in a database
//! of its own. Nothing depends on a server already running.
//!
//! The cluster is started once and kept in a static, whose destructor never runs; a watchdog
//! shell process stops it (`pg_ctl stop -m immediate`) and removes the directory when the test
//! binary exits, however it exits. As root, `initdb` and `postgres` run as the `postgres` user
//! (Debian's package creates it), with the directory chowned to it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// A running cluster: its port and superuser `kms` (trust authentication on 127.0.0.1).
#[derive(Debug)]
pub(crate) struct TestCluster {
    port: u16,
}

static CLUSTER: OnceLock<TestCluster> = OnceLock::new();

impl TestCluster {
    /// The cluster of this test binary, started on first use.
    pub(crate) fn shared() -> &'static TestCluster {
        CLUSTER.get_or_init(start)
    }

    /// A URL of database `db` on this cluster.
    pub(crate) fn url(&self, db: &str) -> String {
        format!("postgres://kms@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates a fresh, empty database and returns its URL.
    pub(crate) async fn fresh_database(&self) -> String {
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let admin = sqlx::PgPool::connect(&self.url("postgres")).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        self.url(&name)
    }
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`: `KMS_PAM_PG_BIN`, else Debian's
/// newest `/usr/lib/postgresql/N/bin`, else the `PATH`.
pub(crate) fn bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("KMS_PAM_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop()
}

fn tool(name: &str) -> PathBuf {
    bin_dir().map_or_else(|| PathBuf::from(name), |dir| dir.join(name))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

/// Runs a PostgreSQL tool, as the `postgres` user when we are root.
fn run_as_owner(program: &Path, args: &[&str]) {
    let mut command = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    let out = command
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (is PostgreSQL installed?)", program.display()));
    assert!(
        out.status.success(),
        "{} {args:?}: {}\n{}",
        program.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn start() -> TestCluster {
    let dir = tempfile::Builder::new()
        .prefix("kms-pam-pg-")
        .tempdir()
        .unwrap()
        .keep();
    let data = dir.join("data");
    if is_root() {
        let ok = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(ok.success(), "chown of {} failed", dir.display());
    }
    let data_arg = data.to_string_lossy().into_owned();
    run_as_owner(
        &tool("initdb"),
        &["-D", &data_arg, "-U", "kms", "--auth=trust", "--no-sync"],
    );
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let options = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
        dir.display()
    );
    let log = dir.join("postgres.log").to_string_lossy().into_owned();
    run_as_owner(
        &tool("pg_ctl"),
        &["-D", &data_arg, "-o", &options, "-l", &log, "-w", "start"],
    );
    spawn_watchdog(&dir, &data_arg);
    TestCluster { port }
}

/// Stops the cluster and removes its directory once this process is gone.
// The watchdog must outlive this process, so nothing here may wait for it.
#[allow(clippy::zombie_processes)]
fn spawn_watchdog(dir: &Path, data: &str) {
    let stop = if is_root() {
        format!(
            "runuser -u postgres -- {} -D {data} -m immediate stop",
            tool("pg_ctl").display()
        )
    } else {
        format!("{} -D {data} -m immediate stop", tool("pg_ctl").display())
    };
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf {dir}",
        pid = std::process::id(),
        dir = dir.display()
    );
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
}
