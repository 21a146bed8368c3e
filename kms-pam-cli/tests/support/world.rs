//! A real deployment for the end-to-end CLI tests: `kms-pam server`, the `kms-pam-gateway`
//! binary and the CLI as processes, in a private home, with resource `prod` and account
//! `prod/admin` on the API server double.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use kms_pam_tests::apiserver::ApiServerDouble;
use kms_pam_tests::private_ca::{KmsTlsFiles, PrivateCa};
use serde_json::Value;
use tokio::process::{Child, Command};

use super::procs::{free_port, gateway_bin, output_of, Out};
use super::BIN as CLI;

/// The gateway's log, appended to across restarts (shown when the test fails).
pub(crate) fn gateway_log(home: &Path) -> Stdio {
    log_file(&home.join("gateway.log"))
}

/// A file appended to across restarts.
fn log_file(path: &Path) -> Stdio {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("log file");
    Stdio::from(file)
}

/// The processes of one run and where they keep their state.
pub(crate) struct World {
    pub(crate) home: tempfile::TempDir,
    pub(crate) url: String,
    pub(crate) kms_port: u16,
    pub(crate) gw_port: u16,
    pub(crate) admin: String,
    /// When KMS serves HTTPS: its certificate, key and the private CA clients trust.
    pub(crate) tls: Option<KmsTlsFiles>,
}

impl World {
    pub(crate) fn kms_data(&self) -> PathBuf {
        self.home.path().join("kms-data")
    }

    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(CLI);
        command
            .args(args)
            .env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path().join(".config"))
            .env("KMS_PAM_URL", &self.url)
            .env("KMS_PAM_TOKEN", &self.admin)
            .env_remove("KMS_PAM_KMS_CA")
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if let Some(tls) = &self.tls {
            command.env("KMS_PAM_KMS_CA", &tls.ca);
        }
        command
    }

    pub(crate) async fn run(&self, args: &[&str]) -> Out {
        output_of(self.command(args), Duration::from_secs(30)).await
    }

    pub(crate) async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert_eq!(
            out.code,
            Some(0),
            "kms-pam {}: {}",
            args.join(" "),
            out.stderr
        );
        out.stdout
    }

    pub(crate) async fn json(&self, args: &[&str]) -> Value {
        let text = self.ok(args).await;
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    pub(crate) fn start_kms(&self) -> Child {
        let listen = format!("127.0.0.1:{}", self.kms_port);
        let mut server = Command::new(CLI);
        server
            .args(["server", "--listen", &listen])
            .arg("--data-dir")
            .arg(self.kms_data())
            .env("HOME", self.home.path())
            .stdout(log_file(&self.home.path().join("kms.out")))
            .stderr(Stdio::null())
            .kill_on_drop(true);
        if let Some(tls) = &self.tls {
            server.arg("--tls-cert").arg(&tls.cert);
            server.arg("--tls-key").arg(&tls.key);
        }
        server.spawn().expect("start kms-pam server")
    }

    pub(crate) fn start_gateway(&self, enroll: Option<&str>) -> Child {
        let mut gateway = Command::new(gateway_bin());
        gateway
            .args(["--kms-url", &self.url, "--name", "gw1"])
            .args(["--listen", &format!("127.0.0.1:{}", self.gw_port)])
            .arg("--data-dir")
            .arg(self.home.path().join("gw-data"))
            .stdout(Stdio::null())
            .stderr(gateway_log(self.home.path()))
            .env_remove("KMS_PAM_KMS_CA")
            .kill_on_drop(true);
        if let Some(tls) = &self.tls {
            gateway.arg("--kms-ca").arg(&tls.ca);
        }
        if let Some(token) = enroll {
            gateway.args(["--enroll-token", token]);
        }
        gateway.spawn().expect("start kms-pam-gateway")
    }

    pub(crate) async fn wait_kms(&self) {
        wait_until("KMS to answer", || async {
            self.run(&["whoami"]).await.code == Some(0)
        })
        .await;
    }

    /// `pam sessions show ID -o json`.
    pub(crate) async fn show(&self, id: &str) -> Value {
        self.json(&["pam", "sessions", "show", id, "-o", "json"])
            .await
    }

    /// The `command` names of a session's kubectl invocations, in order (`pam access` itself
    /// may probe the path first, without kubectl's headers).
    pub(crate) async fn commands(&self, id: &str) -> Vec<String> {
        let show = self.show(id).await;
        show["commands"]
            .as_array()
            .expect("commands")
            .iter()
            .map(|c| c["command"].as_str().unwrap_or_default().to_owned())
            .filter(|c| c.starts_with("kubectl "))
            .collect()
    }

    /// `(rows, distinct seqs, max seq)` of a session's stored events.
    pub(crate) fn stored_counts(&self, id: &str) -> (u64, u64, u64) {
        let sql = format!(
            "SELECT COUNT(*), COUNT(DISTINCT seq), MAX(seq) FROM session_events \
             WHERE session_id = '{id}'"
        );
        let row = sqlite(&self.kms_data().join("kms.db"), &sql);
        let numbers: Vec<u64> = row
            .trim()
            .split('|')
            .map(|n| n.parse().expect("a number"))
            .collect();
        (numbers[0], numbers[1], numbers[2])
    }
}

pub(crate) fn sqlite(db: &Path, sql: &str) -> String {
    let output = std::process::Command::new("sqlite3")
        .arg(db)
        .arg(sql)
        .output()
        .expect("sqlite3 is installed");
    assert!(
        output.status.success(),
        "sqlite3: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub(crate) async fn wait_until<F: std::future::Future<Output = bool>>(
    what: &str,
    mut check: impl FnMut() -> F,
) {
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

pub(crate) async fn wait_file(path: &Path) {
    wait_until(&format!("{}", path.display()), || {
        let exists = path.exists();
        async move { exists }
    })
    .await;
}

pub(crate) async fn kill(child: &mut Child) {
    child.start_kill().expect("SIGKILL");
    let _ = child.wait().await;
}

/// Starts KMS and an enrolled gateway, with resource `prod` and account `prod/admin`.
pub(crate) async fn world(double: &ApiServerDouble) -> (World, Child, Child) {
    world_with(double, false).await
}

/// [`world`], with KMS serving HTTPS with a private CA's certificate when `https` (the CLI
/// given `KMS_PAM_KMS_CA`, the gateway `--kms-ca`).
pub(crate) async fn world_with(double: &ApiServerDouble, https: bool) -> (World, Child, Child) {
    let (world, server, gateway) = start_kms_and_gateway(https).await;
    add_prod(&world, double).await;
    (world, server, gateway)
}

/// Resource `prod` on the double through gateway `gw1`, and account `prod/admin`.
pub(crate) async fn add_prod(world: &World, double: &ApiServerDouble) {
    let home = world.home.path();
    std::fs::write(home.join("ca.pem"), double.ca_pem()).expect("ca");
    std::fs::write(home.join("sa"), double.token()).expect("sa token");
    let ca = home.join("ca.pem").to_string_lossy().into_owned();
    let sa = home.join("sa").to_string_lossy().into_owned();
    let url = double.url();
    let resource = [
        "pam",
        "resource",
        "create",
        "kubernetes",
        "prod",
        "--url",
        &url,
    ];
    world
        .ok(&[&resource[..], &["--gateway", "gw1", "--ca-cert", &ca]].concat())
        .await;
    world
        .ok(&[
            "pam",
            "account",
            "create",
            "prod/admin",
            "--token-file",
            &sa,
        ])
        .await;
}

/// Starts KMS and gateway `gw1`, enrolled and online; no resource yet.
pub(crate) async fn kms_and_gateway() -> (World, Child, Child) {
    start_kms_and_gateway(false).await
}

async fn start_kms_and_gateway(https: bool) -> (World, Child, Child) {
    let (world, server) = start_kms_only(https).await;
    let enroll = world.new_gateway("gw1").await;
    let gateway = world.start_gateway(Some(&enroll));
    wait_until("gateway online", || async {
        world
            .ok(&["gateway", "list", "-o", "json"])
            .await
            .contains("\"online\"")
    })
    .await;
    (world, server, gateway)
}

impl World {
    /// `gateway create NAME`: its enrollment token.
    pub(crate) async fn new_gateway(&self, name: &str) -> String {
        let created = self.json(&["gateway", "create", name, "-o", "json"]).await;
        created["enrollment_token"]
            .as_str()
            .expect("token")
            .to_owned()
    }
}

/// Starts KMS alone, answering, with the admin token read.
pub(crate) async fn start_kms_only(https: bool) -> (World, Child) {
    let home = tempfile::tempdir().expect("home");
    let kms_port = free_port().await;
    let tls = https.then(|| PrivateCa::new().write_kms_files(home.path()));
    let scheme = if https { "https" } else { "http" };
    let world = World {
        url: format!("{scheme}://127.0.0.1:{kms_port}"),
        gw_port: free_port().await,
        kms_port,
        home,
        admin: String::new(),
        tls,
    };
    let server = world.start_kms();
    let token_file = world.kms_data().join("admin.token");
    wait_file(&token_file).await;
    let admin = std::fs::read_to_string(&token_file).expect("admin token");
    let world = World {
        admin: admin.trim().to_owned(),
        ..world
    };
    world.wait_kms().await;
    (world, server)
}

/// `pam access prod/admin -- sh -c SCRIPT`, in the background.
pub(crate) fn access(world: &World, script: &str) -> Child {
    access_with(world, &[], script)
}

/// `pam access prod/admin EXTRA... -- sh -c SCRIPT`, in the background.
pub(crate) fn access_with(world: &World, extra: &[&str], script: &str) -> Child {
    let args = [
        &["pam", "access", "prod/admin", "--duration", "10m"][..],
        extra,
        &["--", "sh", "-c", script],
    ]
    .concat();
    let mut command = world.command(&args);
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    command.spawn().expect("start pam access")
}

pub(crate) async fn finish(child: Child) -> Out {
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("pam access finished in time")
        .expect("wait");
    Out {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The id of the only active session.
pub(crate) async fn active_session(world: &World) -> String {
    for _ in 0..200 {
        let list = world
            .json(&["pam", "sessions", "list", "--active", "-o", "json"])
            .await;
        if let Some(id) = list.get(0).and_then(|s| s["id"].as_str()) {
            return id.to_owned();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no active session");
}
