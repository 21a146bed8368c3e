//! The whole docs/cli.md flow with real processes: `kms-pam server`, the `kms-pam-gateway` binary
//! enrolled with KMS, the `kms-pam` CLI, and the real kubectl, against the API server double.
//! From an empty data dir to `pam sessions show`; refusals; termination cutting a running
//! `kubectl get pods -w`; KMS down; and a search of everything the run produced for the
//! service-account token.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use kms_pam_tests::apiserver::{ApiServerDouble, DoubleConfig};
use serde_json::Value;
use tokio::process::Command;

use crate::support::procs::{free_port, gateway_bin, output_of, Out};
use crate::support::BIN as CLI;

/// Everything the run printed, for the token search at the end.
#[derive(Default)]
struct Transcript(Vec<String>);

struct Env<'a> {
    home: &'a Path,
    url: String,
}

impl Env<'_> {
    fn command(&self, token: Option<&str>, args: &[&str]) -> Command {
        let mut command = Command::new(CLI);
        command
            .args(args)
            .env("HOME", self.home)
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env("KMS_PAM_URL", &self.url)
            .env_remove("KMS_PAM_TOKEN")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if let Some(token) = token {
            command.env("KMS_PAM_TOKEN", token);
        }
        command
    }

    async fn run(&self, t: &mut Transcript, token: Option<&str>, args: &[&str]) -> Out {
        let out = output_of(self.command(token, args), Duration::from_secs(60)).await;
        t.0.push(format!(
            "$ kms-pam {}\n{}{}",
            args.join(" "),
            out.stdout,
            out.stderr
        ));
        out
    }

    async fn ok_json(&self, t: &mut Transcript, token: &str, args: &[&str]) -> Value {
        let out = self.run(t, Some(token), args).await;
        assert_eq!(
            out.code,
            Some(0),
            "kms-pam {}: {}",
            args.join(" "),
            out.stderr
        );
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
    }
}

async fn wait_until<F: std::future::Future<Output = bool>>(
    what: &str,
    mut check: impl FnMut() -> F,
) {
    for _ in 0..150 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Every file under `dir`, recursively.
fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                files(&path, out);
            } else {
                out.push(path);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spec_flow_from_empty_data_dir_to_sessions_show() {
    let double = ApiServerDouble::start(DoubleConfig::default())
        .await
        .expect("double");
    let sa_token = double.token().to_owned();
    let home = tempfile::tempdir().expect("home");
    let data = home.path().join("kms-data");
    let gateway_data = home.path().join("gw-data");
    let mut t = Transcript::default();

    // KMS from an empty data dir.
    let kms_port = free_port().await;
    let url = format!("http://127.0.0.1:{kms_port}");
    let env = Env {
        home: home.path(),
        url: url.clone(),
    };
    let mut server = env.command(
        None,
        &["server", "--listen", &format!("127.0.0.1:{kms_port}")],
    );
    server
        .arg("--data-dir")
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut server = server.spawn().expect("start kms-pam server");
    let token_file = data.join("admin.token");
    wait_until("admin.token", || {
        let exists = token_file.exists();
        async move { exists }
    })
    .await;
    let admin = std::fs::read_to_string(&token_file)
        .expect("admin token")
        .trim()
        .to_owned();
    let login = env
        .run(&mut t, None, &["login", "--url", &url, "--token", &admin])
        .await;
    assert_eq!(login.code, Some(0), "{}", login.stderr);
    let who = env.run(&mut t, None, &["whoami"]).await;
    assert!(who.stdout.contains("admin"), "{}", who.stdout);

    // A gateway, enrolled with a one-time token; it shows online.
    let created = env
        .ok_json(&mut t, &admin, &["gateway", "create", "gw1", "-o", "json"])
        .await;
    let enroll = created["enrollment_token"]
        .as_str()
        .expect("enrollment token")
        .to_owned();
    let gw_port = free_port().await;
    let mut gateway = Command::new(gateway_bin())
        .args([
            "--kms-url",
            &url,
            "--name",
            "gw1",
            "--listen",
            &format!("127.0.0.1:{gw_port}"),
        ])
        .args(["--enroll-token", &enroll])
        .arg("--data-dir")
        .arg(&gateway_data)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start kms-pam-gateway");
    wait_until("gateway online", || {
        let env = &env;
        let admin = admin.clone();
        async move {
            let mut scratch = Transcript::default();
            let out = env
                .run(
                    &mut scratch,
                    Some(&admin),
                    &["gateway", "list", "-o", "json"],
                )
                .await;
            out.stdout.contains("\"online\"")
        }
    })
    .await;

    // A resource, an account, a member with a grant, a member without one.
    std::fs::write(home.path().join("cluster-ca.pem"), double.ca_pem()).expect("ca file");
    std::fs::write(home.path().join("sa-token"), &sa_token).expect("token file");
    let ca_file = home.path().join("cluster-ca.pem");
    let resource = env
        .run(
            &mut t,
            Some(&admin),
            &[
                "pam",
                "resource",
                "create",
                "kubernetes",
                "prod",
                "--url",
                &double.url(),
                "--gateway",
                "gw1",
                "--ca-cert",
                ca_file.to_str().expect("utf-8"),
            ],
        )
        .await;
    assert_eq!(resource.code, Some(0), "{}", resource.stderr);
    let token_file = home.path().join("sa-token");
    let account = env
        .run(
            &mut t,
            Some(&admin),
            &[
                "pam",
                "account",
                "create",
                "prod/admin",
                "--token-file",
                token_file.to_str().expect("utf-8"),
                "--max-duration",
                "1h",
            ],
        )
        .await;
    assert_eq!(account.code, Some(0), "{}", account.stderr);
    let bob = env
        .ok_json(&mut t, &admin, &["user", "create", "bob", "-o", "json"])
        .await;
    let bob = bob["token"].as_str().expect("bob's token").to_owned();
    let carol = env
        .ok_json(&mut t, &admin, &["user", "create", "carol", "-o", "json"])
        .await;
    let carol = carol["token"].as_str().expect("carol's token").to_owned();
    let grant = env
        .run(
            &mut t,
            Some(&admin),
            &[
                "pam",
                "grant",
                "create",
                "prod/admin",
                "--user",
                "bob",
                "--max-duration",
                "30m",
            ],
        )
        .await;
    assert_eq!(grant.code, Some(0), "{}", grant.stderr);

    // bob runs kubectl through a session.
    let access = env
        .run(
            &mut t,
            Some(&bob),
            &[
                "pam",
                "access",
                "prod/admin",
                "--duration",
                "10m",
                "--reason",
                "flow test",
                "--",
                "kubectl",
                "get",
                "pods",
            ],
        )
        .await;
    assert_eq!(access.code, Some(0), "{}", access.stderr);
    assert!(access.stdout.contains("Running"), "{}", access.stdout);

    // Refusals: no grant; longer than the grant allows.
    let refused = env
        .run(
            &mut t,
            Some(&carol),
            &[
                "pam",
                "access",
                "prod/admin",
                "--",
                "kubectl",
                "get",
                "pods",
            ],
        )
        .await;
    assert_ne!(refused.code, Some(0));
    assert!(refused.stderr.starts_with("error: "), "{}", refused.stderr);
    let too_long = env
        .run(
            &mut t,
            Some(&bob),
            &[
                "pam",
                "access",
                "prod/admin",
                "--duration",
                "2h",
                "--",
                "kubectl",
                "get",
                "pods",
            ],
        )
        .await;
    assert_ne!(too_long.code, Some(0));
    assert!(
        too_long.stderr.contains("30m") || too_long.stderr.contains("1800"),
        "{}",
        too_long.stderr
    );

    // The session is recorded, ended by its user, with the docs/cli.md shape.
    let sessions = env
        .ok_json(&mut t, &admin, &["pam", "sessions", "list", "-o", "json"])
        .await;
    let sessions = sessions.as_array().expect("array");
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    let s = &sessions[0];
    for key in [
        "id",
        "user",
        "resource",
        "account",
        "gateway",
        "status",
        "created_at",
        "expires_at",
        "ended_at",
        "reason",
    ] {
        assert!(s.get(key).is_some(), "sessions list lacks {key}: {s}");
    }
    assert_eq!(s["user"], "bob");
    assert_eq!(s["status"], "ended");
    assert_eq!(s["reason"], "flow test");
    let id = s["id"].as_str().expect("id").to_owned();
    let show = env
        .ok_json(
            &mut t,
            &admin,
            &["pam", "sessions", "show", &id, "-o", "json"],
        )
        .await;
    assert_eq!(show["id"], id.as_str());
    assert!(show.get("commands").is_some(), "{show}");
    let bobs_view = env
        .run(
            &mut t,
            Some(&bob),
            &["pam", "sessions", "list", "-o", "json"],
        )
        .await;
    assert_eq!(bobs_view.code, Some(0), "{}", bobs_view.stderr);
    let carols_view = env
        .ok_json(&mut t, &carol, &["pam", "sessions", "list", "-o", "json"])
        .await;
    assert_eq!(
        carols_view,
        Value::Array(vec![]),
        "a member sees only their own sessions"
    );

    // Termination cuts a running watch; the CLI exits non-zero saying so.
    let mut watch = env.command(
        Some(&bob),
        &[
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
        ],
    );
    watch.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut watch = watch.spawn().expect("start pam access -w");
    let mut active_id = None;
    for _ in 0..150 {
        let mut scratch = Transcript::default();
        let out = env
            .run(
                &mut scratch,
                Some(&admin),
                &["pam", "sessions", "list", "--active", "-o", "json"],
            )
            .await;
        let list: Value = serde_json::from_str(&out.stdout).unwrap_or(Value::Null);
        active_id = list
            .get(0)
            .and_then(|s| s["id"].as_str())
            .map(str::to_owned);
        if active_id.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let Some(active_id) = active_id else {
        let _ = watch.start_kill();
        let out = watch.wait_with_output().await.expect("output");
        panic!(
            "no active session; pam access said:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    wait_until("the watch to reach the cluster", || {
        let open = double.open_streams();
        async move { open > 0 }
    })
    .await;
    let terminate = env
        .run(
            &mut t,
            Some(&admin),
            &["pam", "sessions", "terminate", &active_id],
        )
        .await;
    assert_eq!(terminate.code, Some(0), "{}", terminate.stderr);
    let watched = tokio::time::timeout(Duration::from_secs(10), watch.wait_with_output())
        .await
        .expect("pam access ended after termination")
        .expect("wait");
    let stderr = String::from_utf8_lossy(&watched.stderr).into_owned();
    t.0.push(format!(
        "$ pam access -- kubectl get pods -w\n{}{stderr}",
        String::from_utf8_lossy(&watched.stdout)
    ));
    assert_ne!(watched.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("terminated"), "{stderr}");
    wait_until("the cluster-side watch to close", || {
        let open = double.open_streams();
        async move { open == 0 }
    })
    .await;

    // KMS down: a clear message.
    server.start_kill().expect("stop KMS");
    let _ = server.wait().await;
    let down = env
        .run(
            &mut t,
            Some(&bob),
            &[
                "pam",
                "access",
                "prod/admin",
                "--",
                "kubectl",
                "get",
                "pods",
            ],
        )
        .await;
    assert_ne!(down.code, Some(0));
    assert!(down.stderr.contains("cannot reach KMS"), "{}", down.stderr);
    gateway.start_kill().expect("stop gateway");
    let gateway_log = gateway.wait_with_output().await.expect("gateway output");
    t.0.push(String::from_utf8_lossy(&gateway_log.stderr).into_owned());

    // The service-account token appears in no output and no file the run produced (the token
    // file the test itself wrote aside).
    for (i, text) in t.0.iter().enumerate() {
        assert!(
            !text.contains(&sa_token),
            "output {i} contains the service-account token:\n{text}"
        );
    }
    let mut all = Vec::new();
    files(home.path(), &mut all);
    for path in all.iter().filter(|p| **p != token_file) {
        let bytes = std::fs::read(path).expect("read produced file");
        let hit = bytes
            .windows(sa_token.len())
            .any(|w| w == sa_token.as_bytes());
        assert!(
            !hit,
            "{} contains the service-account token",
            path.display()
        );
    }
    double.shutdown().await;
}
