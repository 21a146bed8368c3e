//! Starting and stopping the processes under test: `bench-node` roles and `kubectl proxy`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context as _};
use base64::Engine as _;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::time::timeout;

use crate::node::{Ready, Role};

/// How long a process gets to announce itself (generous: a profiler may be wrapping it).
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a process gets to stop after its stdin closes, before it is killed (generous: a
/// profiler writes its output at exit).
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `bench-node`. Killed if dropped without [`NodeProcess::stop`].
#[derive(Debug)]
pub struct NodeProcess {
    role: Role,
    pid: u32,
    child: Child,
    stdin: Option<ChildStdin>,
    /// Kept open: the node must never write into a closed pipe.
    _stdout: Lines<BufReader<ChildStdout>>,
    /// What the node announced.
    pub ready: Ready,
}

impl NodeProcess {
    /// Starts `exe` (the `bench-node` binary) in `role` with `spec`, and waits for its
    /// announcement.
    ///
    /// `BENCH_NODE_WRAP` (e.g. `valgrind --tool=callgrind`) runs the roles named in
    /// `BENCH_NODE_WRAP_ROLES` (comma-separated; default: all) under that command, for profiling;
    /// the node's environment names its role in `BENCH_NODE_ROLE` (for `%q{BENCH_NODE_ROLE}`).
    pub async fn start(exe: &Path, role: Role, spec: &impl Serialize) -> anyhow::Result<Self> {
        let mut command = wrapped_command(exe, role);
        command
            .arg(role.as_str())
            .env("BENCH_NODE_ROLE", role.as_str())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .with_context(|| format!("start {}", exe.display()))?;
        let pid = child.id().context("the node exited at once")?;
        let mut stdin = child.stdin.take().context("node stdin")?;
        let mut line = serde_json::to_vec(spec)?;
        line.push(b'\n');
        stdin.write_all(&line).await?;
        stdin.flush().await?;
        let mut stdout = BufReader::new(child.stdout.take().context("node stdout")?).lines();
        let announced = timeout(START_TIMEOUT, stdout.next_line())
            .await
            .with_context(|| format!("{} did not start in time", role.as_str()))??
            .with_context(|| format!("{} exited before it was ready", role.as_str()))?;
        let ready = serde_json::from_str(&announced)
            .with_context(|| format!("{} announced {announced:?}", role.as_str()))?;
        Ok(Self {
            role,
            pid,
            child,
            stdin: Some(stdin),
            _stdout: stdout,
            ready,
        })
    }

    /// The process id, for reading its memory.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Closes its stdin (the node shuts down gracefully) and waits; kills it if it lingers.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        drop(self.stdin.take());
        match timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(status) => {
                let status = status?;
                if !status.success() {
                    bail!("{} exited with {status}", self.role.as_str());
                }
                Ok(())
            }
            Err(_) => {
                self.child.kill().await?;
                bail!(
                    "{} did not stop within {STOP_TIMEOUT:?}",
                    self.role.as_str()
                )
            }
        }
    }
}

fn wrapped_command(exe: &Path, role: Role) -> Command {
    let wrap = std::env::var("BENCH_NODE_WRAP").unwrap_or_default();
    let roles = std::env::var("BENCH_NODE_WRAP_ROLES").unwrap_or_default();
    let applies = roles.is_empty() || roles.split(',').any(|r| r.trim() == role.as_str());
    let mut words = wrap.split_whitespace();
    match (applies, words.next()) {
        (true, Some(program)) => {
            let mut command = Command::new(program);
            command.args(words).arg(exe);
            command
        }
        _ => Command::new(exe),
    }
}

/// The `kubectl` to use as the baseline: `$KUBECTL`, else the first `kubectl` on `PATH`.
pub fn find_kubectl() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("KUBECTL") {
        return Some(PathBuf::from(path)).filter(|p| p.is_file());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("kubectl"))
        .find(|p| p.is_file())
}

/// A running `kubectl proxy` in front of the stand-in API server.
#[derive(Debug)]
pub struct KubectlProxy {
    child: Child,
    pid: u32,
    _stdout: Lines<BufReader<ChildStdout>>,
    _dir: tempfile::TempDir,
    /// Where it listens (plain HTTP on loopback).
    pub addr: SocketAddr,
}

impl KubectlProxy {
    /// Writes a kubeconfig for `server` (trusting `ca_pem`, sending `token`) and starts
    /// `kubectl proxy --port=0` with it.
    pub async fn start(
        kubectl: &Path,
        server: &str,
        ca_pem: &str,
        token: &str,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let kubeconfig = dir.path().join("kubeconfig");
        let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
        let yaml = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: bench\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: bench\n  user:\n    token: {token}\ncontexts:\n- name: bench\n  context:\n    cluster: bench\n    user: bench\ncurrent-context: bench\n"
        );
        std::fs::write(&kubeconfig, yaml)?;
        let mut child = Command::new(kubectl)
            .arg("proxy")
            .arg("--port=0")
            .arg(format!("--kubeconfig={}", kubeconfig.display()))
            .arg(format!(
                "--cache-dir={}",
                dir.path().join("cache").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start {} proxy", kubectl.display()))?;
        let pid = child.id().context("kubectl proxy exited at once")?;
        let mut stdout = BufReader::new(child.stdout.take().context("stdout")?).lines();
        // It prints "Starting to serve on 127.0.0.1:PORT".
        let line = timeout(START_TIMEOUT, stdout.next_line())
            .await
            .context("kubectl proxy did not start in time")??
            .context("kubectl proxy exited before serving")?;
        let addr = line
            .rsplit(' ')
            .next()
            .and_then(|a| a.parse().ok())
            .with_context(|| format!("unexpected kubectl proxy output {line:?}"))?;
        Ok(Self {
            child,
            pid,
            _stdout: stdout,
            _dir: dir,
            addr,
        })
    }

    /// The process id, for reading its memory.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Stops it.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.child.kill().await?;
        Ok(())
    }
}
