//! A throwaway PostgreSQL cluster for `store_engines`: `initdb` in a temporary directory,
//! `pg_ctl` on a free port, stopped (`-m immediate`) and removed on drop, as the tests do. The
//! tools come from `KMS_PAM_PG_BIN`, else the newest `/usr/lib/postgresql/*/bin`, else `PATH`;
//! as root they run as the `postgres` user (`initdb` refuses root).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{ensure, Context as _};

/// A running cluster with superuser `kms` (trust authentication on 127.0.0.1).
#[derive(Debug)]
pub struct PgCluster {
    dir: tempfile::TempDir,
    port: u16,
}

impl PgCluster {
    /// `initdb` and `pg_ctl start`, with `fsync` on (the engines are compared as deployed).
    pub fn start() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("cluster dir")?;
        if is_root() {
            let chowned = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()?;
            ensure!(chowned.success(), "chown of the cluster dir failed");
        }
        let data = dir.path().join("data").to_string_lossy().into_owned();
        run("initdb", &["-D", &data, "-U", "kms", "--auth=trust"])?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200",
            dir.path().display()
        );
        let log = dir.path().join("pg.log").to_string_lossy().into_owned();
        run(
            "pg_ctl",
            &["-D", &data, "-o", &options, "-l", &log, "-w", "start"],
        )?;
        Ok(Self { dir, port })
    }

    /// The URL of database `db`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://kms@127.0.0.1:{}/{db}", self.port)
    }

    /// The postmaster's process id (from `postmaster.pid`), whose children are the backends.
    pub fn postmaster_pid(&self) -> anyhow::Result<u32> {
        let file = self.dir.path().join("data/postmaster.pid");
        let text =
            std::fs::read_to_string(&file).with_context(|| format!("read {}", file.display()))?;
        text.lines()
            .next()
            .and_then(|line| line.trim().parse().ok())
            .context("no pid in postmaster.pid")
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let data = self.dir.path().join("data").to_string_lossy().into_owned();
        let _ = run("pg_ctl", &["-D", &data, "-m", "immediate", "stop"]);
    }
}

/// The cluster's processes: the postmaster and its children (backends, writers), for CPU
/// accounting.
pub fn cluster_pids(postmaster: u32) -> Vec<u32> {
    let mut pids = vec![postmaster];
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let parent = std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|stat| {
                let (_, rest) = stat.rsplit_once(')')?;
                rest.split_whitespace().nth(1)?.parse::<u32>().ok()
            });
        if parent == Some(postmaster) {
            pids.push(pid);
        }
    }
    pids
}

fn tool(name: &str) -> PathBuf {
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
    found.pop().unwrap_or_else(|| Path::new(name).to_owned())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

fn run(name: &str, args: &[&str]) -> anyhow::Result<()> {
    let tool = tool(name);
    let mut command = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&tool);
        c
    } else {
        Command::new(&tool)
    };
    let out = command
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("{} (is PostgreSQL installed?)", tool.display()))?;
    ensure!(
        out.status.success(),
        "{name} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}
