//! Projects, roles and taking access away, with real processes (SPEC §7, issue 11): `kms-pam
//! server`, the `kms-pam-gateway` binary, the CLI and the real kubectl against the API server
//! double.
//!
//! Two projects; a project admin of `team-a` who can neither see nor change `team-b`; a member
//! and an auditor with their rights; `user disable` cutting a running `kubectl get pods -w` and
//! the old token refused; grant deletion ending a session; a SIGKILLed `pam access` whose session
//! ends `ended (abandoned)` at KMS's real 30 s default (within 60 s), one stopped for as long
//! that says so when it wakes, and the stale kubeconfig removed by the next `pam access`; and
//! `gateway revoke` refusing the next tunnel. The cut latencies are printed (`--nocapture`).

// Tests: a failed set-up panics with its reason.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use kms_pam::access::{open_session, AccessRequest};
use kms_pam::kms::client::KmsClient;
use kms_pam::kube::kubeconfig::KubeconfigTarget;
use kms_pam::Secret;
use kms_pam_tests::apiserver::{ApiServerDouble, DoubleConfig};
use serde_json::Value;
use tokio::process::{Child, Command};

mod support;

use support::procs::{free_port, gateway_bin, output_of, Out};
use support::BIN as CLI;

/// SPEC §2.9: access taken away ends the affected sessions within this.
const CUT_BOUND: Duration = Duration::from_secs(1);

struct World {
    home: tempfile::TempDir,
    url: String,
    admin: String,
    double: ApiServerDouble,
}

impl World {
    /// The CLI as the holder of `token`, in HOME `home` (a user's own login lives there).
    fn command_in(&self, home: &Path, token: Option<&str>, args: &[&str]) -> Command {
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

    fn command(&self, token: &str, args: &[&str]) -> Command {
        self.command_in(self.home.path(), Some(token), args)
    }

    async fn run(&self, token: &str, args: &[&str]) -> Out {
        output_of(self.command(token, args), Duration::from_secs(60)).await
    }

    async fn ok(&self, token: &str, args: &[&str]) -> String {
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

    async fn json(&self, token: &str, args: &[&str]) -> Value {
        let text = self.ok(token, &[args, &["-o", "json"]].concat()).await;
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    /// Fails with `expected` in its one error line.
    async fn refused(&self, token: &str, args: &[&str], expected: &str) {
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
    async fn user(&self, name: &str) -> String {
        let created = self.json(&self.admin, &["user", "create", name]).await;
        created["token"].as_str().expect("token").to_owned()
    }

    /// The sessions of `team-a` as the organisation admin sees them.
    async fn sessions(&self) -> Vec<Value> {
        let args = ["pam", "sessions", "list", "--project", "team-a"];
        let list = self.json(&self.admin, &args).await;
        list.as_array().expect("array").clone()
    }

    /// `pam access prod/admin -- kubectl get pods -w` in `team-a` as `token`, once its watch is
    /// open at the cluster.
    async fn watching(&self, token: &str) -> Child {
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
    /// command finished the cluster-side watch closed, and the whole time from its start.
    async fn cut_by(&self, args: &[&str]) -> (Duration, Duration) {
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
        (cut.saturating_duration_since(answered), cut - started)
    }
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

/// Waits for a `pam access` to exit; returns its exit code and stderr.
async fn finished(child: Child) -> (Option<i32>, String) {
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("pam access ended")
        .expect("wait");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Starts `pam access prod/admin [EXTRA…]` (serving, no command) in `team-a` from `home`, its
/// stderr into `stderr`, returning once its session is active, with the session id and the
/// kubeconfig it wrote.
async fn serving(
    world: &World,
    home: &Path,
    extra: &[&str],
    stderr: &Path,
) -> (Child, String, PathBuf) {
    let args = [
        &["pam", "access", "prod/admin", "--duration", "10m"][..],
        extra,
    ]
    .concat();
    let mut command = world.command_in(home, None, &args);
    let stderr = std::fs::File::create(stderr).expect("stderr file");
    command.stdout(Stdio::piped()).stderr(Stdio::from(stderr));
    let mut child = command.spawn().expect("start pam access");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let (mut id, mut kubeconfig) = (None, None);
    while let Ok(Some(line)) = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the session banner")
    {
        if let Some(rest) = line.strip_prefix("Session ") {
            id = rest.split_whitespace().next().map(str::to_owned);
        }
        if let Some(path) = line.trim().strip_prefix("export KUBECONFIG=") {
            kubeconfig = Some(PathBuf::from(path));
        }
        if line.contains("Press Ctrl+C") {
            break;
        }
    }
    // The rest of its output is not needed; keep the pipe drained.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (
        child,
        id.expect("session id"),
        kubeconfig.expect("kubeconfig"),
    )
}

fn signal(child: &Child, name: &str) {
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid])
        .status()
        .expect("kill");
    assert!(status.success());
}

async fn start(home: &Path, double: ApiServerDouble) -> (World, Child, Child) {
    let port = free_port().await;
    let url = format!("http://127.0.0.1:{port}");
    let data = home.join("kms-data");
    let server = Command::new(CLI)
        .args(["server", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(&data)
        .env("HOME", home)
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
    let world = World {
        home: tempfile::tempdir_in(home).expect("cli home"),
        url: url.clone(),
        admin,
        double,
    };
    let created = world
        .json(&world.admin, &["gateway", "create", "gw1"])
        .await;
    let enroll = created["enrollment_token"]
        .as_str()
        .expect("enrollment token");
    let gw_port = free_port().await;
    let gateway = Command::new(gateway_bin())
        .args(["--kms-url", &url, "--name", "gw1"])
        .args(["--listen", &format!("127.0.0.1:{gw_port}")])
        .args(["--enroll-token", enroll])
        .arg("--data-dir")
        .arg(home.join("gw-data"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start kms-pam-gateway");
    for _ in 0..300 {
        let list = world.json(&world.admin, &["gateway", "list"]).await;
        if list[0]["status"] == "online" {
            return (world, server, gateway);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the gateway never came online");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projects_roles_and_revocation_with_real_processes() {
    let double = ApiServerDouble::start(DoubleConfig::default())
        .await
        .expect("double");
    let root = tempfile::tempdir().expect("root");
    let ca_file = root.path().join("cluster-ca.pem");
    let sa_file = root.path().join("sa-token");
    std::fs::write(&ca_file, double.ca_pem()).expect("ca");
    std::fs::write(&sa_file, double.token()).expect("sa token");
    let (ca_file, sa_file) = (ca_file.to_str().unwrap(), sa_file.to_str().unwrap());
    let double_url = double.url();
    let (w, _server, _gateway) = start(root.path(), double).await;
    let admin = w.admin.clone();

    // Two projects; a project admin of team-a; a member and an auditor; names unique by case.
    w.ok(&admin, &["project", "create", "team-a"]).await;
    w.ok(&admin, &["project", "create", "team-b"]).await;
    let pat = w.user("pat").await;
    let alice = w.user("alice").await;
    let audrey = w.user("audrey").await;
    let bob = w.user("bob").await;
    let carl = w.user("carl").await;
    w.refused(&admin, &["user", "create", "Alice"], "regardless of case")
        .await;
    for (user, role) in [
        ("pat", "admin"),
        ("alice", "member"),
        ("audrey", "auditor"),
        ("bob", "member"),
        ("carl", "member"),
    ] {
        w.ok(
            &admin,
            &["project", "member", "add", "team-a", user, "--role", role],
        )
        .await;
    }
    let staging = [
        "--project",
        "team-b",
        "pam",
        "resource",
        "create",
        "kubernetes",
        "staging",
        "--url",
        &double_url,
        "--gateway",
        "gw1",
        "--ca-cert",
        ca_file,
    ];
    w.ok(&admin, &staging).await;

    // The project admin manages team-a ...
    let prod = [
        "--project",
        "team-a",
        "pam",
        "resource",
        "create",
        "kubernetes",
        "prod",
        "--url",
        &double_url,
        "--gateway",
        "gw1",
        "--ca-cert",
        ca_file,
    ];
    w.ok(&pat, &prod).await;
    let account = [
        "--project",
        "team-a",
        "pam",
        "account",
        "create",
        "prod/admin",
        "--token-file",
        sa_file,
    ];
    w.ok(&pat, &account).await;
    // The project admin edits it without a token: the stored one stays (the sessions below run
    // on it); an auditor may not edit it.
    let update = [
        "--project",
        "team-a",
        "pam",
        "account",
        "update",
        "prod/admin",
        "--description",
        "on-call",
        "--max-duration",
        "2h",
    ];
    let out = w.ok(&pat, &update).await;
    assert!(out.contains("token unchanged"), "{out}");
    let accounts = w
        .json(&pat, &["--project", "team-a", "pam", "account", "list"])
        .await;
    assert_eq!(accounts[0]["description"], "on-call");
    assert_eq!(accounts[0]["max_duration_secs"], 7200);
    w.refused(&audrey, &update, "auditor").await;
    for user in ["alice", "bob", "carl"] {
        let grant = [
            "--project",
            "team-a",
            "pam",
            "grant",
            "create",
            "prod/admin",
            "--user",
            user,
        ];
        w.ok(&pat, &grant).await;
    }
    // ... and can neither see nor change team-b.
    let projects = w.json(&pat, &["project", "list"]).await;
    let names: Vec<&str> = projects
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["default", "team-a"]);
    w.refused(
        &pat,
        &["--project", "team-b", "pam", "resource", "list"],
        "project team-b not found",
    )
    .await;
    w.refused(
        &pat,
        &[
            "--project",
            "team-b",
            "pam",
            "resource",
            "delete",
            "staging",
        ],
        "project team-b not found",
    )
    .await;
    w.refused(
        &pat,
        &[
            "project", "member", "add", "team-b", "pat", "--role", "admin",
        ],
        "project team-b not found",
    )
    .await;
    w.refused(
        &pat,
        &["project", "create", "team-c"],
        "organisation administrators",
    )
    .await;
    let b = w
        .json(&admin, &["--project", "team-b", "pam", "resource", "list"])
        .await;
    assert_eq!(b[0]["name"], "staging", "team-b is untouched");

    // Alice logs in from a token file with team-a as her default project.
    let alice_home = root.path().join("alice");
    std::fs::create_dir_all(&alice_home).expect("alice home");
    let alice_token = alice_home.join("token");
    std::fs::write(&alice_token, format!("{alice}\n")).expect("token file");
    let login = [
        "login",
        "--url",
        &w.url,
        "--token-file",
        alice_token.to_str().unwrap(),
        "--project",
        "team-a",
    ];
    let out = output_of(
        w.command_in(&alice_home, None, &login),
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout.contains("Default project: team-a"),
        "{}",
        out.stdout
    );

    // A SIGKILLed `pam access`, and one stopped (a laptop asleep), both left unheld from here:
    // KMS's real 30 s default runs while the rest of the test does.
    let killed_log = alice_home.join("killed.stderr");
    let (killed, killed_id, stale) = serving(&w, &alice_home, &[], &killed_log).await;
    let elsewhere = alice_home.join("stopped.yaml");
    let elsewhere = ["--kubeconfig", elsewhere.to_str().unwrap()];
    let stopped_log = alice_home.join("stopped.stderr");
    let (stopped, stopped_id, _) = serving(&w, &alice_home, &elsewhere, &stopped_log).await;
    signal(&killed, "KILL");
    signal(&stopped, "STOP");
    let unheld_since = Instant::now();
    assert!(
        stale.exists(),
        "a SIGKILLed pam access leaves its kubeconfig behind"
    );
    // The next `pam access` of the account removes it (below, as the member runs kubectl).

    // The member runs kubectl in team-a through her stored login and sees her own sessions.
    let args = [
        "pam",
        "access",
        "prod/admin",
        "--",
        "kubectl",
        "get",
        "pods",
    ];
    let out = output_of(
        w.command_in(&alice_home, None, &args),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("Running"), "{}", out.stdout);
    assert!(out.stderr.contains("did not end cleanly"), "{}", out.stderr);
    assert!(!stale.exists());
    let mine = output_of(
        w.command_in(
            &alice_home,
            None,
            &["pam", "sessions", "list", "-o", "json"],
        ),
        Duration::from_secs(30),
    )
    .await;
    let mine: Value = serde_json::from_str(&mine.stdout).expect("json");
    assert!(
        mine.as_array()
            .unwrap()
            .iter()
            .all(|s| s["user"] == "alice"),
        "{mine}"
    );
    // The auditor reads every session of the project and changes nothing.
    let audited = w
        .json(&audrey, &["--project", "team-a", "pam", "sessions", "list"])
        .await;
    assert!(audited
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["id"] == killed_id.as_str()));
    let shown = w
        .json(
            &audrey,
            &["--project", "team-a", "pam", "sessions", "show", &killed_id],
        )
        .await;
    assert_eq!(shown["user"], "alice");
    w.refused(
        &audrey,
        &[
            "--project",
            "team-a",
            "pam",
            "access",
            "prod/admin",
            "--",
            "true",
        ],
        "auditor",
    )
    .await;
    w.refused(
        &audrey,
        &[
            "--project",
            "team-a",
            "pam",
            "sessions",
            "terminate",
            &killed_id,
        ],
        "auditor",
    )
    .await;
    w.refused(
        &audrey,
        &[
            "--project",
            "team-a",
            "pam",
            "grant",
            "create",
            "prod/admin",
            "--user",
            "audrey",
        ],
        "auditor",
    )
    .await;

    // `user disable` cuts a running watch; the old token is refused; the CLI says why.
    let watch = w.watching(&bob).await;
    let (after_answer, total) = w.cut_by(&["user", "disable", "bob"]).await;
    println!("user disable: watch cut {after_answer:?} after KMS answered ({total:?} from running the command)");
    assert!(
        after_answer <= CUT_BOUND,
        "cut {after_answer:?} after the disable"
    );
    let (code, stderr) = finished(watch).await;
    assert_ne!(code, Some(0), "{stderr}");
    assert!(stderr.contains("disabled"), "{stderr}");
    w.refused(&bob, &["whoami"], "user bob is disabled").await;
    let bobs = w.sessions().await;
    let bobs = bobs
        .iter()
        .find(|s| s["user"] == "bob")
        .expect("bob's session");
    assert_eq!(
        (bobs["status"].as_str(), bobs["end_cause"].as_str()),
        (Some("terminated"), Some("user_disabled"))
    );

    // Deleting the grant ends the session opened under it.
    let watch = w.watching(&carl).await;
    let grants = w
        .json(&pat, &["--project", "team-a", "pam", "grant", "list"])
        .await;
    let carls = grants
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["user"] == "carl")
        .expect("grant");
    let id = carls["id"].as_str().unwrap().to_owned();
    let (after_answer, total) = w
        .cut_by(&["--project", "team-a", "pam", "grant", "delete", &id])
        .await;
    println!("grant delete: watch cut {after_answer:?} after KMS answered ({total:?} from running the command)");
    assert!(
        after_answer <= CUT_BOUND,
        "cut {after_answer:?} after the grant deletion"
    );
    let (code, stderr) = finished(watch).await;
    assert_ne!(code, Some(0), "{stderr}");
    assert!(stderr.contains("grant"), "{stderr}");

    // The unheld sessions end as abandoned within 60 s; --active never shows them after that.
    // Each is judged by its own last sign of life: the stopped CLI's session was opened after
    // the killed one's, so the reaper may end it a tick later.
    let mut abandoned_after = None;
    while unheld_since.elapsed() < Duration::from_secs(60) {
        let sessions = w.sessions().await;
        let status = |id: &str| {
            let session = sessions.iter().find(|s| s["id"] == id).expect("listed");
            (session["status"].clone(), session["end_cause"].clone())
        };
        let (killed_status, stopped_status) = (status(&killed_id), status(&stopped_id));
        if killed_status.0 != "active" && stopped_status.0 != "active" {
            for (id, (status, cause)) in
                [(&killed_id, killed_status), (&stopped_id, stopped_status)]
            {
                assert_eq!(
                    (status.as_str(), cause.as_str()),
                    (Some("ended"), Some("abandoned")),
                    "session {id}"
                );
            }
            abandoned_after = Some(unheld_since.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let abandoned_after =
        abandoned_after.expect("the SIGKILLed and the stopped sessions ended within 60 s");
    println!("abandoned: both unheld sessions ended {abandoned_after:?} after their CLIs stopped");
    let active = w
        .json(
            &admin,
            &["--project", "team-a", "pam", "sessions", "list", "--active"],
        )
        .await;
    for id in [&killed_id, &stopped_id] {
        assert!(
            !active
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["id"] == id.as_str()),
            "{active}"
        );
    }
    // The stopped CLI wakes up, learns its session was abandoned, and exits non-zero.
    signal(&stopped, "CONT");
    let out = tokio::time::timeout(Duration::from_secs(20), stopped.wait_with_output())
        .await
        .expect("the woken pam access ended")
        .expect("wait");
    let said = std::fs::read_to_string(&stopped_log).expect("stderr");
    assert_ne!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("abandoned"), "{said}");

    // `gateway revoke`: an open session's next tunnel is refused, its token too, and KMS opens
    // no new session on it.
    let kms = KmsClient::new(&w.url, Some(Secret::new(alice.clone())))
        .expect("client")
        .in_project("team-a");
    let kubeconfig = alice_home.join("revoked.yaml");
    let request = AccessRequest::new("prod", "admin", Duration::from_secs(600))
        .with_kubeconfig(KubeconfigTarget::File(kubeconfig.clone()));
    let access = open_session(&kms, request).await.expect("session");
    let kubectl = |path: PathBuf| async move {
        let mut command = Command::new("kubectl");
        command
            .args(["get", "pods", "--request-timeout=10s"])
            .env("KUBECONFIG", path)
            .kill_on_drop(true);
        output_of(command, Duration::from_secs(30)).await
    };
    let before = kubectl(kubeconfig.clone()).await;
    assert_eq!(before.code, Some(0), "{}", before.stderr);
    w.ok(&admin, &["gateway", "revoke", "gw1"]).await;
    let after = kubectl(kubeconfig.clone()).await;
    assert_ne!(
        after.code,
        Some(0),
        "a tunnel to the revoked gateway went through: {}",
        after.stdout
    );
    println!("kubectl after the revocation: {}", after.stderr.trim());
    let closed = access.close().await.expect("close");
    assert_eq!(
        closed.session.end_cause,
        Some(kms_pam::session::EndCause::GatewayRevoked)
    );
    let gw_token =
        std::fs::read_to_string(root.path().join("gw-data/gateway.token")).expect("gateway token");
    w.refused(gw_token.trim(), &["whoami"], "invalid or revoked API token")
        .await;
    let out = output_of(
        w.command_in(
            &alice_home,
            None,
            &["pam", "access", "prod/admin", "--", "true"],
        ),
        Duration::from_secs(30),
    )
    .await;
    assert_ne!(out.code, Some(0));
    assert!(out.stderr.contains("revoked"), "{}", out.stderr);
    let list = w.json(&admin, &["gateway", "list"]).await;
    assert_eq!(list[0]["status"], "revoked");
}
