//! Two `kms-pam server` replicas on one PostgreSQL database, with real processes (SPEC §9,
//! issue 13): a throwaway cluster (`initdb` + `pg_ctl` in a temporary directory, stopped at the
//! end), replica A and replica B sharing the root key file, the gateway enrolled through and
//! polling A, the CLI talking to B. `pam access -- kubectl get pods -w` through the gateway;
//! `pam sessions terminate` sent to A, then (a second watch) to B, each cuts the watch within 1 s
//! (the second only through B's `NOTIFY` reaching A's waiting poll); `sessions show` on either
//! replica shows the same commands. The cut latencies are printed (`--nocapture`).

// Tests: a failed set-up panics with its reason.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use kms_pam_tests::apiserver::{ApiServerDouble, DoubleConfig};
use serde_json::Value;
use tokio::process::{Child, Command};

mod support;

use support::procs::{free_port, gateway_bin, output_of};
use support::BIN as CLI;

/// SPEC §2.9: a terminated session's stream is cut within this.
const CUT_BOUND: Duration = Duration::from_secs(1);

/// A throwaway PostgreSQL cluster, stopped (and its directory removed) on drop.
struct Cluster {
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
    async fn start() -> Self {
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

    fn url(&self) -> String {
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

/// The CLI against `url` as the holder of `token`.
fn cli(home: &Path, url: &str, token: &str, args: &[&str]) -> Command {
    let mut command = Command::new(CLI);
    command
        .args(args)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("KMS_PAM_URL", url)
        .env("KMS_PAM_TOKEN", token)
        .env_remove("KMS_PAM_PROJECT")
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

async fn ok(home: &Path, url: &str, token: &str, args: &[&str]) -> String {
    let out = output_of(cli(home, url, token, args), Duration::from_secs(60)).await;
    assert_eq!(
        out.code,
        Some(0),
        "kms-pam {}: {}",
        args.join(" "),
        out.stderr
    );
    out.stdout
}

async fn json(home: &Path, url: &str, token: &str, args: &[&str]) -> Value {
    let text = ok(home, url, token, &[args, &["-o", "json"]].concat()).await;
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

async fn wait_until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while started.elapsed() < limit {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

/// A replica: `kms-pam server` on the shared database and key, its own data dir.
async fn replica(root: &Path, name: &str, database: &str) -> (Child, String) {
    let port = free_port().await;
    let child = Command::new(CLI)
        .args(["server", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(root.join(name))
        .env("KMS_PAM_DATABASE", database)
        .env("KMS_PAM_ROOT_KEY_FILE", root.join("root.key"))
        .env("HOME", root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start kms-pam server");
    (child, format!("http://127.0.0.1:{port}"))
}

/// Waits until `url` answers `whoami` for `token`.
async fn answering(home: &Path, url: &str, token: &str) {
    for _ in 0..300 {
        let out = output_of(cli(home, url, token, &["whoami"]), Duration::from_secs(10)).await;
        if out.code == Some(0) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} never answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_postgres_serve_one_gateway_and_one_cli() {
    let cluster = Cluster::start().await;
    let double = ApiServerDouble::start(DoubleConfig::default())
        .await
        .expect("double");
    let root = tempfile::tempdir().expect("root");
    let home = root.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let ca_file = root.path().join("cluster-ca.pem");
    let sa_file = root.path().join("sa-token");
    std::fs::write(&ca_file, double.ca_pem()).unwrap();
    std::fs::write(&sa_file, double.token()).unwrap();
    let (ca_file, sa_file) = (ca_file.to_str().unwrap(), sa_file.to_str().unwrap());

    let (_a, a) = replica(root.path(), "a", &cluster.url()).await;
    let token_file = root.path().join("a/admin.token");
    wait_until("admin.token", Duration::from_secs(30), || {
        token_file.exists()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let admin = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_owned();
    let (_b, b) = replica(root.path(), "b", &cluster.url()).await;
    answering(&home, &b, &admin).await;
    assert!(
        !root.path().join("b/admin.token").exists(),
        "one admin for both"
    );

    // The gateway is created and enrolled through A and polls A.
    let created = json(&home, &a, &admin, &["gateway", "create", "gw1"]).await;
    let enroll = created["enrollment_token"].as_str().expect("enrollment");
    let gw_port = free_port().await;
    let _gateway = Command::new(gateway_bin())
        .args(["--kms-url", &a, "--name", "gw1"])
        .args(["--listen", &format!("127.0.0.1:{gw_port}")])
        .args(["--enroll-token", enroll])
        .arg("--data-dir")
        .arg(root.path().join("gw-data"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start kms-pam-gateway");
    let mut online = false;
    for _ in 0..300 {
        let list = json(&home, &b, &admin, &["gateway", "list"]).await;
        if list[0]["status"] == "online" {
            online = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(online, "the gateway never came online (as seen from B)");

    // Set-up through B; alice works through B.
    let url = double.url();
    let resource = [
        "pam",
        "resource",
        "create",
        "kubernetes",
        "prod",
        "--url",
        &url,
        "--gateway",
        "gw1",
        "--ca-cert",
        ca_file,
    ];
    ok(&home, &b, &admin, &resource).await;
    let account = [
        "pam",
        "account",
        "create",
        "prod/admin",
        "--token-file",
        sa_file,
    ];
    ok(&home, &b, &admin, &account).await;
    let alice = json(&home, &b, &admin, &["user", "create", "alice"]).await;
    let alice = alice["token"].as_str().expect("token").to_owned();
    let grant = ["pam", "grant", "create", "prod/admin", "--user", "alice"];
    ok(&home, &b, &admin, &grant).await;

    let watch = [
        "pam",
        "access",
        "prod/admin",
        "--duration",
        "10m",
        "--",
        "kubectl",
        "get",
        "pods",
        "-w",
    ];
    let mut ids = Vec::new();
    for terminate_on in [&a, &b] {
        let mut child = cli(&home, &b, &alice, &watch);
        child.stdout(Stdio::null()).stderr(Stdio::null());
        let child = child.spawn().expect("pam access -w");
        wait_until(
            "the watch to reach the cluster",
            Duration::from_secs(30),
            || double.open_streams() > 0,
        )
        .await;
        let sessions = json(&home, terminate_on, &admin, &["pam", "sessions", "list"]).await;
        let id = sessions
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["status"] == "active")
            .and_then(|s| s["id"].as_str())
            .expect("an active session")
            .to_owned();
        ok(
            &home,
            terminate_on,
            &admin,
            &["pam", "sessions", "terminate", &id],
        )
        .await;
        let answered = Instant::now();
        wait_until("the watch to be cut", Duration::from_secs(10), || {
            double.open_streams() == 0
        })
        .await;
        let cut = answered.elapsed();
        println!("terminate on {terminate_on}: watch cut {cut:?} after the answer");
        assert!(
            cut <= CUT_BOUND,
            "cut after {cut:?} (terminate on {terminate_on})"
        );
        let _ = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output()).await;
        ids.push(id);
    }

    // Both replicas show every command of both sessions, once the gateway's uploads land.
    for id in &ids {
        let commands = |show: &Value| -> Vec<String> {
            show["commands"]
                .as_array()
                .map(|c| {
                    c.iter()
                        .map(|c| c["command"].as_str().unwrap_or_default().to_owned())
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut seen = Vec::new();
        for _ in 0..100 {
            let on_a = json(&home, &a, &admin, &["pam", "sessions", "show", id]).await;
            let on_b = json(&home, &b, &admin, &["pam", "sessions", "show", id]).await;
            seen = commands(&on_a);
            if !seen.is_empty() && seen == commands(&on_b) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            seen.iter().any(|c| c == "kubectl get"),
            "session {id} commands: {seen:?}"
        );
    }
    drop(cluster);
}
