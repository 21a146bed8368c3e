//! One organisation with real processes for the control-plane tests (docs/cli.md, issue 11): `kms-pam
//! server`, the `kms-pam-gateway` binary (`gw1`), the API server double, and the CLI run as the
//! organisation admin or as any user, from the shared home or a user's own.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use kms_pam_tests::apiserver::{ApiServerDouble, DoubleConfig};
use serde_json::Value;
use tokio::process::{Child, Command};

use super::procs::{free_port, gateway_bin, output_of, Out};
use super::BIN as CLI;

/// security invariant 9, docs/security.md: access taken away ends the affected sessions within this.
pub(crate) const CUT_BOUND: Duration = Duration::from_secs(1);

/// KMS and a gateway running against the API server double, with the organisation admin's token.
pub(crate) struct Org {
    // Killed on drop, before `root` (their data) is removed.
    _server: Child,
    _gateway: Option<Child>,
    /// The shared CLI home (the admin's, and that of users run with a token).
    pub(crate) home: tempfile::TempDir,
    pub(crate) url: String,
    pub(crate) admin: String,
    pub(crate) double: ApiServerDouble,
    /// The API server double's URL, its CA file and a service-account token file for it.
    pub(crate) double_url: String,
    pub(crate) ca_file: PathBuf,
    pub(crate) sa_file: PathBuf,
    /// KMS's data (`kms-data/`), the gateway's (`gw-data/`), and the users' homes.
    pub(crate) root: tempfile::TempDir,
}

impl Org {
    /// Starts the double, KMS and the gateway; returns once the gateway is online.
    pub(crate) async fn start() -> Self {
        let double = ApiServerDouble::start(DoubleConfig::default())
            .await
            .expect("double");
        let root = tempfile::tempdir().expect("root");
        let ca_file = root.path().join("cluster-ca.pem");
        let sa_file = root.path().join("sa-token");
        std::fs::write(&ca_file, double.ca_pem()).expect("ca");
        std::fs::write(&sa_file, double.token()).expect("sa token");
        let port = free_port().await;
        let url = format!("http://127.0.0.1:{port}");
        let data = root.path().join("kms-data");
        let server = Command::new(CLI)
            .args(["server", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(&data)
            .env("HOME", root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start kms-pam server");
        let token_file = data.join("admin.token");
        wait_until("admin.token", Duration::from_secs(30), || {
            token_file.exists()
        })
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let admin = std::fs::read_to_string(&token_file)
            .expect("admin token")
            .trim()
            .to_owned();
        let mut org = Self {
            _server: server,
            // Started below, once KMS has made its enrollment token.
            _gateway: None,
            home: tempfile::tempdir_in(root.path()).expect("cli home"),
            url: url.clone(),
            admin,
            double_url: double.url(),
            double,
            ca_file,
            sa_file,
            root,
        };
        let created = org.json(&org.admin, &["gateway", "create", "gw1"]).await;
        let enroll = created["enrollment_token"]
            .as_str()
            .expect("enrollment token");
        let gw_port = free_port().await;
        let gateway = Command::new(gateway_bin())
            .args(["--kms-url", &url, "--name", "gw1"])
            .args(["--listen", &format!("127.0.0.1:{gw_port}")])
            .args(["--enroll-token", enroll])
            .arg("--data-dir")
            .arg(org.root.path().join("gw-data"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start kms-pam-gateway");
        org._gateway = Some(gateway);
        for _ in 0..300 {
            let list = org.json(&org.admin, &["gateway", "list"]).await;
            if list[0]["status"] == "online" {
                return org;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the gateway never came online");
    }

    /// [`Org::start`], with project `team-a` holding resource `prod` (on `gw1`) and account
    /// `prod/admin`, made by the organisation admin.
    pub(crate) async fn with_team_a() -> Self {
        let org = Self::start().await;
        let admin = org.admin.clone();
        org.ok(&admin, &["project", "create", "team-a"]).await;
        org.ok(&admin, &["gateway", "assign", "gw1", "team-a"])
            .await;
        let prod = [
            "--project",
            "team-a",
            "pam",
            "resource",
            "create",
            "kubernetes",
            "prod",
            "--url",
            &org.double_url,
            "--gateway",
            "gw1",
            "--ca-cert",
            org.ca_file.to_str().unwrap(),
        ];
        org.ok(&admin, &prod).await;
        let account = [
            "--project",
            "team-a",
            "pam",
            "account",
            "create",
            "prod/admin",
            "--token-file",
            org.sa_file.to_str().unwrap(),
        ];
        org.ok(&admin, &account).await;
        org
    }

    /// A new user, a member of `team-a` granted `prod/admin`; returns their token.
    pub(crate) async fn granted_member(&self, name: &str) -> String {
        let token = self.user(name).await;
        let admin = self.admin.clone();
        let add = [
            "project", "member", "add", "team-a", name, "--role", "member",
        ];
        self.ok(&admin, &add).await;
        let grant = [
            "--project",
            "team-a",
            "pam",
            "grant",
            "create",
            "prod/admin",
            "--user",
            name,
        ];
        self.ok(&admin, &grant).await;
        token
    }

    /// A fresh home for a user's own login, under the test's root.
    pub(crate) fn user_home(&self, name: &str) -> PathBuf {
        let home = self.root.path().join(name);
        std::fs::create_dir_all(&home).expect("user home");
        home
    }

    /// `login --token-file FILE --project team-a` as `token`, from `home`.
    pub(crate) async fn login_to_team_a(&self, home: &Path, token: &str) -> Out {
        let token_file = home.join("token");
        std::fs::write(&token_file, format!("{token}\n")).expect("token file");
        let login = [
            "login",
            "--url",
            &self.url,
            "--token-file",
            token_file.to_str().unwrap(),
            "--project",
            "team-a",
        ];
        output_of(self.command_in(home, None, &login), Duration::from_secs(30)).await
    }

    /// The CLI as the holder of `token`, in HOME `home` (a user's own login lives there).
    pub(crate) fn command_in(&self, home: &Path, token: Option<&str>, args: &[&str]) -> Command {
        let mut command = Command::new(CLI);
        command
            .args(args)
            .env("HOME", home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("KMS_PAM_URL", &self.url)
            .env_remove("KMS_PAM_TOKEN")
            .env_remove("KMS_PAM_PROJECT")
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if let Some(token) = token {
            command.env("KMS_PAM_TOKEN", token);
        }
        command
    }

    pub(crate) fn command(&self, token: &str, args: &[&str]) -> Command {
        self.command_in(self.home.path(), Some(token), args)
    }

    pub(crate) async fn run(&self, token: &str, args: &[&str]) -> Out {
        output_of(self.command(token, args), Duration::from_secs(60)).await
    }

    pub(crate) async fn ok(&self, token: &str, args: &[&str]) -> String {
        let out = self.run(token, args).await;
        assert_eq!(
            out.code,
            Some(0),
            "kms-pam {}: {}",
            args.join(" "),
            out.stderr
        );
        out.stdout
    }

    pub(crate) async fn json(&self, token: &str, args: &[&str]) -> Value {
        let text = self.ok(token, &[args, &["-o", "json"]].concat()).await;
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    /// Fails with `expected` in its one error line.
    pub(crate) async fn refused(&self, token: &str, args: &[&str], expected: &str) {
        let out = self.run(token, args).await;
        assert_ne!(out.code, Some(0), "kms-pam {} succeeded", args.join(" "));
        assert!(
            out.stderr.contains(expected),
            "kms-pam {}: expected {expected:?} in {}",
            args.join(" "),
            out.stderr
        );
    }

    /// A new user's token.
    pub(crate) async fn user(&self, name: &str) -> String {
        let created = self.json(&self.admin, &["user", "create", name]).await;
        created["token"].as_str().expect("token").to_owned()
    }

    /// The sessions of `team-a` as the organisation admin sees them.
    pub(crate) async fn sessions(&self) -> Vec<Value> {
        let args = ["pam", "sessions", "list", "--project", "team-a"];
        let list = self.json(&self.admin, &args).await;
        list.as_array().expect("array").clone()
    }

    /// The status and end cause of `user`'s session in `team-a` (their only one).
    pub(crate) async fn ending_of(&self, user: &str) -> (String, String) {
        let sessions = self.sessions().await;
        let session = sessions
            .iter()
            .find(|s| s["user"] == user)
            .unwrap_or_else(|| panic!("{user}'s session"));
        let text = |v: &Value| v.as_str().unwrap_or("-").to_owned();
        (text(&session["status"]), text(&session["end_cause"]))
    }

    /// `pam access prod/admin -- kubectl get pods -w` in `team-a` as `token`, once its watch is
    /// open at the cluster.
    pub(crate) async fn watching(&self, token: &str) -> Child {
        let args = [
            "--project",
            "team-a",
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
        let mut command = self.command(token, &args);
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let child = command.spawn().expect("start pam access -w");
        wait_until(
            "the watch to reach the cluster",
            Duration::from_secs(30),
            || self.double.open_streams() > 0,
        )
        .await;
        child
    }

    /// Runs `args` as the organisation admin while a watch is open; returns how long after the
    /// command finished the cluster-side watch closed, the whole time from its start, and what
    /// the command printed.
    pub(crate) async fn cut_by(&self, args: &[&str]) -> (Duration, Duration, String) {
        let started = Instant::now();
        let out = self.run(&self.admin.clone(), args).await;
        assert_eq!(
            out.code,
            Some(0),
            "kms-pam {}: {}",
            args.join(" "),
            out.stderr
        );
        let answered = Instant::now();
        wait_until("the watch to be cut", Duration::from_secs(10), || {
            self.double.open_streams() == 0
        })
        .await;
        let cut = Instant::now();
        (
            cut.saturating_duration_since(answered),
            cut - started,
            out.stdout,
        )
    }
}

pub(crate) async fn wait_until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while started.elapsed() < limit {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Waits for a `pam access` to exit; returns its exit code and stderr.
pub(crate) async fn finished(child: Child) -> (Option<i32>, String) {
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("pam access ended")
        .expect("wait");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
