//! Session tracking end to end with real processes (`kms-pam server`, the `kms-pam-gateway`
//! binary, the CLI, the real kubectl, the API server double): kubectl commands read back by
//! `pam sessions show`, an exec replayed, KMS down and the gateway SIGKILLed mid-session with
//! every event delivered once afterwards, and a row altered in the KMS database caught by
//! `pam sessions verify`.

// Tests: a failed set-up panics with its reason.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use kms_pam_tests::apiserver::{nginx_pod_names, ApiServerDouble, DoubleConfig};
use serde_json::Value;
use tokio::process::{Child, Command};

mod support;

use support::procs::{free_port, gateway_bin, output_of, Out};
use support::BIN as CLI;

/// The gateway's log, appended to across restarts (shown when the test fails).
fn gateway_log(home: &Path) -> Stdio {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(home.join("gateway.log"))
        .expect("gateway log");
    Stdio::from(file)
}

/// The processes of one run and where they keep their state.
struct World {
    home: tempfile::TempDir,
    url: String,
    kms_port: u16,
    gw_port: u16,
    admin: String,
}

impl World {
    fn kms_data(&self) -> PathBuf {
        self.home.path().join("kms-data")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(CLI);
        command
            .args(args)
            .env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path().join(".config"))
            .env("KMS_PAM_URL", &self.url)
            .env("KMS_PAM_TOKEN", &self.admin)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }

    async fn run(&self, args: &[&str]) -> Out {
        output_of(self.command(args), Duration::from_secs(30)).await
    }

    async fn ok(&self, args: &[&str]) -> String {
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

    async fn json(&self, args: &[&str]) -> Value {
        let text = self.ok(args).await;
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    fn start_kms(&self) -> Child {
        let listen = format!("127.0.0.1:{}", self.kms_port);
        let mut server = Command::new(CLI);
        server
            .args(["server", "--listen", &listen])
            .arg("--data-dir")
            .arg(self.kms_data())
            .env("HOME", self.home.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        server.spawn().expect("start kms-pam server")
    }

    fn start_gateway(&self, enroll: Option<&str>) -> Child {
        let mut gateway = Command::new(gateway_bin());
        gateway
            .args(["--kms-url", &self.url, "--name", "gw1"])
            .args(["--listen", &format!("127.0.0.1:{}", self.gw_port)])
            .arg("--data-dir")
            .arg(self.home.path().join("gw-data"))
            .stdout(Stdio::null())
            .stderr(gateway_log(self.home.path()))
            .kill_on_drop(true);
        if let Some(token) = enroll {
            gateway.args(["--enroll-token", token]);
        }
        gateway.spawn().expect("start kms-pam-gateway")
    }

    async fn wait_kms(&self) {
        wait_until("KMS to answer", || async {
            self.run(&["whoami"]).await.code == Some(0)
        })
        .await;
    }

    /// `pam sessions show ID -o json`.
    async fn show(&self, id: &str) -> Value {
        self.json(&["pam", "sessions", "show", id, "-o", "json"])
            .await
    }

    /// The `command` names of a session's kubectl invocations, in order (`pam access` itself
    /// may probe the path first, without kubectl's headers).
    async fn commands(&self, id: &str) -> Vec<String> {
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
    fn stored_counts(&self, id: &str) -> (u64, u64, u64) {
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

fn sqlite(db: &Path, sql: &str) -> String {
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

async fn wait_until<F: std::future::Future<Output = bool>>(
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

async fn wait_file(path: &Path) {
    wait_until(&format!("{}", path.display()), || {
        let exists = path.exists();
        async move { exists }
    })
    .await;
}

async fn kill(child: &mut Child) {
    child.start_kill().expect("SIGKILL");
    let _ = child.wait().await;
}

/// Starts KMS and an enrolled gateway, with resource `prod` and account `prod/admin`.
async fn world(double: &ApiServerDouble) -> (World, Child, Child) {
    let home = tempfile::tempdir().expect("home");
    let kms_port = free_port().await;
    let world = World {
        url: format!("http://127.0.0.1:{kms_port}"),
        gw_port: free_port().await,
        kms_port,
        home,
        admin: String::new(),
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
    let created = world
        .json(&["gateway", "create", "gw1", "-o", "json"])
        .await;
    let enroll = created["enrollment_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let gateway = world.start_gateway(Some(&enroll));
    wait_until("gateway online", || async {
        world
            .ok(&["gateway", "list", "-o", "json"])
            .await
            .contains("\"online\"")
    })
    .await;
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
    (world, server, gateway)
}

/// `pam access prod/admin -- sh -c SCRIPT`, in the background.
fn access(world: &World, script: &str) -> Child {
    let mut command = world.command(&[
        "pam",
        "access",
        "prod/admin",
        "--duration",
        "10m",
        "--",
        "sh",
        "-c",
        script,
    ]);
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    command.spawn().expect("start pam access")
}

async fn finish(child: Child) -> Out {
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
async fn active_session(world: &World) -> String {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_commands_are_tracked_delivered_once_and_verified() {
    let double = ApiServerDouble::start(DoubleConfig::default())
        .await
        .expect("double");
    let (world, mut server, mut gateway) = world(&double).await;
    let pod = nginx_pod_names().remove(0);

    // One session running the usual commands; each is one command in `show`.
    let script = format!(
        "set -e; kubectl get pods; kubectl describe pod {pod} >/dev/null; \
         kubectl create configmap tracked --from-literal=a=b; kubectl delete configmap tracked; \
         printf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata:\\n  name: applied\\ndata:\\n  k: v\\n' \
           | kubectl apply --validate=false -f -; \
         kubectl exec {pod} -- echo hello-from-exec; \
         timeout 2 kubectl logs -f {pod} >/dev/null || true"
    );
    let first = finish(access(&world, &script)).await;
    assert_eq!(first.code, Some(0), "{}{}", first.stdout, first.stderr);
    assert!(first.stdout.contains("hello-from-exec"), "{}", first.stdout);
    let list = world.json(&["pam", "sessions", "list", "-o", "json"]).await;
    let id = list[0]["id"].as_str().expect("id").to_owned();
    let expected = [
        "kubectl get",
        "kubectl describe",
        "kubectl create configmap",
        "kubectl delete",
        "kubectl apply",
        "kubectl exec",
        "kubectl logs",
    ];
    let mut seen = Vec::new();
    for _ in 0..100 {
        seen = world.commands(&id).await;
        if seen == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, expected, "the session's commands at KMS");
    let show = world.show(&id).await;
    let get = show["commands"]
        .as_array()
        .expect("commands")
        .iter()
        .find(|c| c["command"] == "kubectl get")
        .expect("kubectl get");
    assert!(get["started_at"].is_string(), "{get}");
    let listed = get["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .find(|r| r["verb"] == "list")
        .unwrap_or_else(|| panic!("no list request: {get}"));
    for key in [
        "time",
        "method",
        "path",
        "status",
        "verb",
        "resource",
        "namespace",
        "name",
    ] {
        assert!(listed.get(key).is_some(), "request lacks {key}: {listed}");
    }
    assert_eq!(
        (&listed["resource"], &listed["namespace"], &listed["status"]),
        (
            &Value::from("pods"),
            &Value::from("default"),
            &Value::from(200)
        )
    );
    let text = world.ok(&["pam", "sessions", "show", &id]).await;
    assert!(text.contains("kubectl get pods -n default  200"), "{text}");
    assert!(
        text.contains("-- echo hello-from-exec  [recording 1]"),
        "{text}"
    );
    let replay = world
        .ok(&["pam", "sessions", "show", &id, "--recording", "1"])
        .await;
    assert_eq!(replay, "hello-from-exec\n");
    let verify = world.run(&["pam", "sessions", "verify", &id]).await;
    assert_eq!(verify.code, Some(0), "{}", verify.stderr);
    let (rows, _, _) = world.stored_counts(&id);
    assert_eq!(verify.stdout, format!("intact ({rows} events)\n"));

    // KMS down mid-session, then the gateway SIGKILLed with events still spooled: after the
    // restarts every event arrives, once.
    let home = world.home.path();
    let step = |n: u32| home.join(format!("step{n}"));
    let done = |n: u32| home.join(format!("done{n}"));
    let wait = |n: u32| format!("while [ ! -f {} ]; do sleep 0.1; done", step(n).display());
    let script = format!(
        "set -e; kubectl get pods; {}; kubectl get configmaps; touch {}; {}; \
         kubectl get namespaces; touch {}; {}; kubectl get pods",
        wait(1),
        done(1).display(),
        wait(2),
        done(2).display(),
        wait(3)
    );
    let second = access(&world, &script);
    let id = active_session(&world).await;
    wait_until("the first command at KMS", || async {
        world.commands(&id).await.len() == 1
    })
    .await;
    kill(&mut server).await;
    std::fs::write(step(1), "").expect("step 1");
    wait_file(&done(1)).await;
    server = world.start_kms();
    world.wait_kms().await;
    wait_until("events spooled while KMS was down", || async {
        world.commands(&id).await == ["kubectl get", "kubectl get"]
    })
    .await;

    kill(&mut server).await;
    std::fs::write(step(2), "").expect("step 2");
    wait_file(&done(2)).await;
    // Past the spool's 50 ms sync window, so the events are on disk when the gateway dies.
    tokio::time::sleep(Duration::from_millis(300)).await;
    kill(&mut gateway).await;
    server = world.start_kms();
    world.wait_kms().await;
    gateway = world.start_gateway(None);
    std::fs::write(step(3), "").expect("step 3");
    let second = finish(second).await;
    assert_eq!(second.code, Some(0), "{}{}", second.stdout, second.stderr);
    wait_until("every event of the second session", || async {
        let show = world.show(&id).await;
        let paths: Vec<String> = show["commands"]
            .as_array()
            .expect("commands")
            .iter()
            .flat_map(|c| c["requests"].as_array().cloned().unwrap_or_default())
            .filter(|r| r["discovery"] == false)
            .map(|r| r["path"].as_str().unwrap_or_default().to_owned())
            .collect();
        paths
            == [
                "/api/v1/namespaces/default/pods",
                "/api/v1/namespaces/default/configmaps",
                "/api/v1/namespaces",
                "/api/v1/namespaces/default/pods",
            ]
    })
    .await;
    let (rows, seqs, max) = world.stored_counts(&id);
    assert_eq!((rows, seqs), (max, max), "each event once, no gap");
    let verify = world.run(&["pam", "sessions", "verify", &id]).await;
    assert_eq!(
        verify.stdout,
        format!("intact ({rows} events)\n"),
        "{}",
        verify.stderr
    );

    // A stored event altered behind KMS's back: verify names it and exits 1.
    let db = world.kms_data().join("kms.db");
    let target = sqlite(
        &db,
        &format!(
            "SELECT seq || ' ' || id FROM session_events WHERE session_id = '{id}' \
             AND event LIKE '%\"request_finished\"%' ORDER BY seq LIMIT 1"
        ),
    );
    let (seq, event_id) = target.trim().split_once(' ').expect("a finished request");
    sqlite(
        &db,
        &format!(
            "UPDATE session_events SET event = replace(event, '\"status\":200', \
             '\"status\":403') WHERE id = '{event_id}'"
        ),
    );
    let verify = world.run(&["pam", "sessions", "verify", &id]).await;
    assert_eq!(verify.code, Some(1), "{}{}", verify.stdout, verify.stderr);
    assert!(
        verify
            .stdout
            .starts_with(&format!("broken at seq {seq} ({event_id}): ")),
        "{}",
        verify.stdout
    );
    kill(&mut gateway).await;
    kill(&mut server).await;
    double.shutdown().await;
}
