//! A throwaway PostgreSQL cluster for the tests that need one (docs/operations.md): `initdb` in a temporary
//! directory, `pg_ctl` on a free port, stopped (and removed) at the end. Nothing depends on a
//! database already running. The tools come from `KMS_PAM_PG_BIN`, else the newest
//! `/usr/lib/postgresql/*/bin`, else `PATH`.

use std::path::PathBuf;
use std::process::Stdio;

use super::procs::free_port;

/// A throwaway PostgreSQL cluster, stopped (and its directory removed) on drop.
pub(crate) struct Cluster {
    dir: tempfile::TempDir,
    port: u16,
}

fn pg_tool(name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("KMS_PAM_PG_BIN") {
        return PathBuf::from(dir).join(name);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dir| {
            dir.filter_map(|e| e.ok().map(|e| e.path().join("bin").join(name)))
                .filter(|p| p.exists())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found.pop().unwrap_or_else(|| PathBuf::from(name))
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

/// Runs a PostgreSQL tool, as the `postgres` user when we are root (initdb refuses root).
fn pg_run(name: &str, args: &[&str]) {
    let tool = pg_tool(name);
    let mut command = if is_root() {
        let mut c = std::process::Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&tool);
        c
    } else {
        std::process::Command::new(&tool)
    };
    let out = command
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (is PostgreSQL installed?)", tool.display()));
    assert!(
        out.status.success(),
        "{name} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Cluster {
    pub(crate) async fn start() -> Self {
        let dir = tempfile::tempdir().expect("cluster dir");
        if is_root() {
            let ok = std::process::Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(ok.success());
        }
        let data = dir.path().join("data").to_string_lossy().into_owned();
        pg_run(
            "initdb",
            &["-D", &data, "-U", "kms", "--auth=trust", "--no-sync"],
        );
        let port = free_port().await;
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            dir.path().display()
        );
        let log = dir.path().join("pg.log").to_string_lossy().into_owned();
        pg_run(
            "pg_ctl",
            &["-D", &data, "-o", &options, "-l", &log, "-w", "start"],
        );
        Self { dir, port }
    }

    /// `postgres://kms@127.0.0.1:PORT/postgres`.
    pub(crate) fn url(&self) -> String {
        format!("postgres://kms@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Never panic here: this also runs while a failed test unwinds.
        let data = self.dir.path().join("data");
        let mut command = if is_root() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(pg_tool("pg_ctl"));
            c
        } else {
            std::process::Command::new(pg_tool("pg_ctl"))
        };
        let _ = command
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
