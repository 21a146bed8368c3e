//! Two `kms-pam server` replicas on one PostgreSQL database, with real processes (docs/operations.md,
//! issue 13): a throwaway cluster (`initdb` + `pg_ctl` in a temporary directory, stopped at the
//! end), replica A and replica B sharing the root key file, the gateway enrolled through and
//! polling A, the CLI talking to B. `pam access -- kubectl get pods -w` through the gateway;
//! `pam sessions terminate` sent to A, then (a second watch) to B, each cuts the watch within 1 s
//! (the second only through B's `NOTIFY` reaching A's waiting poll); `sessions show` on either
//! replica shows the same commands. The cut latencies are printed (`--nocapture`).
//!
//! Failover: the gateway is given both URLs (`--kms-url A,B`) and so is the CLI (`KMS_PAM_URL`,
//! A first, so that its polls too have to move); replica A is SIGKILLed during a
//! `kubectl get pods -w` session; the gateway's change feed and audit uploads and the CLI's status
//! polls carry on through B: a terminate sent to B still cuts the watch, the CLI never reports
//! that it cannot check the session, and the database holds each of the gateway's events once.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use kms_pam_tests::apiserver::{nginx_pod_names, ApiServerDouble, DoubleConfig};
use serde_json::Value;
use sqlx::PgPool;
use tokio::process::{Child, Command};

use crate::support::pg::Cluster;
use crate::support::procs::{free_port, gateway_bin, output_of};
use crate::support::BIN as CLI;

/// security invariant 9, docs/security.md: a terminated session's stream is cut within this.
const CUT_BOUND: Duration = Duration::from_secs(1);

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

/// Both replicas on one cluster, the gateway enrolled through A (and given `gateway_urls`),
/// resource `prod`, account `prod/admin`, and user `alice` granted it; set up through B.
struct Deployment {
    double: ApiServerDouble,
    home: std::path::PathBuf,
    a: String,
    b: String,
    replica_a: Child,
    _replica_b: Child,
    _gateway: Child,
    admin: String,
    alice: String,
    // Last: dropped after the processes that use them.
    root: tempfile::TempDir,
    cluster: Cluster,
}

async fn deploy(gateway_urls: &[&str]) -> Deployment {
    let cluster = Cluster::start().await;
    // Pod watches see only the changes a test makes.
    let quiet = DoubleConfig {
        watch_tick: None,
        ..DoubleConfig::default()
    };
    let double = ApiServerDouble::start(quiet).await.expect("double");
    let root = tempfile::tempdir().expect("root");
    let home = root.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let ca_file = root.path().join("cluster-ca.pem");
    let sa_file = root.path().join("sa-token");
    std::fs::write(&ca_file, double.ca_pem()).unwrap();
    std::fs::write(&sa_file, double.token()).unwrap();
    let (ca_file, sa_file) = (ca_file.to_str().unwrap(), sa_file.to_str().unwrap());

    let (replica_a, a) = replica(root.path(), "a", &cluster.url()).await;
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
    let (replica_b, b) = replica(root.path(), "b", &cluster.url()).await;
    answering(&home, &b, &admin).await;
    assert!(
        !root.path().join("b/admin.token").exists(),
        "one admin for both"
    );

    // The gateway is created and enrolled through A, the first of its URLs.
    let created = json(&home, &a, &admin, &["gateway", "create", "gw1"]).await;
    let enroll = created["enrollment_token"].as_str().expect("enrollment");
    let gateway_urls: Vec<&str> = gateway_urls
        .iter()
        .map(|n| if *n == "a" { a.as_str() } else { b.as_str() })
        .collect();
    let gw_port = free_port().await;
    let gateway = Command::new(gateway_bin())
        .args(["--kms-url", &gateway_urls.join(","), "--name", "gw1"])
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

    // Set-up through B.
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
    Deployment {
        double,
        home,
        a,
        b,
        replica_a,
        _replica_b: replica_b,
        _gateway: gateway,
        admin,
        alice,
        root,
        cluster,
    }
}

const WATCH: [&str; 10] = [
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

/// The id of the one active session, as `url` lists it.
async fn active_session(d: &Deployment, url: &str) -> String {
    let sessions = json(&d.home, url, &d.admin, &["pam", "sessions", "list"]).await;
    sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["status"] == "active")
        .and_then(|s| s["id"].as_str())
        .expect("an active session")
        .to_owned()
}

/// Sends `pam sessions terminate` to `url` and returns how long after its answer the watch
/// was cut.
async fn terminate_and_time_the_cut(d: &Deployment, url: &str, id: &str) -> Duration {
    ok(
        &d.home,
        url,
        &d.admin,
        &["pam", "sessions", "terminate", id],
    )
    .await;
    let answered = Instant::now();
    wait_until("the watch to be cut", Duration::from_secs(10), || {
        d.double.open_streams() == 0
    })
    .await;
    answered.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_postgres_serve_one_gateway_and_one_cli() {
    let d = deploy(&["a"]).await;
    let (home, a, b) = (&d.home, &d.a, &d.b);
    let mut ids = Vec::new();
    for terminate_on in [a, b] {
        let mut child = cli(home, b, &d.alice, &WATCH);
        child.stdout(Stdio::null()).stderr(Stdio::null());
        let child = child.spawn().expect("pam access -w");
        wait_until(
            "the watch to reach the cluster",
            Duration::from_secs(30),
            || d.double.open_streams() > 0,
        )
        .await;
        let id = active_session(&d, terminate_on).await;
        let cut = terminate_and_time_the_cut(&d, terminate_on, &id).await;
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
        let mut seen = Vec::new();
        for _ in 0..100 {
            let on_a = json(home, a, &d.admin, &["pam", "sessions", "show", id]).await;
            let on_b = json(home, b, &d.admin, &["pam", "sessions", "show", id]).await;
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
}

fn commands(show: &Value) -> Vec<String> {
    show["commands"]
        .as_array()
        .map(|c| {
            c.iter()
                .map(|c| c["command"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// `(rows, distinct seqs, lowest seq, highest seq)` of a session's events in the database.
async fn stored_events(db: &PgPool, id: &str) -> (i64, i64, i64, i64) {
    sqlx::query_as(
        "SELECT COUNT(*), COUNT(DISTINCT seq), COALESCE(MIN(seq), -1), COALESCE(MAX(seq), -1) \
         FROM session_events WHERE session_id = $1",
    )
    .bind(id)
    .fetch_one(db)
    .await
    .expect("count the session's events")
}

/// The events the gateway recorded for session `id`, from its own JSON-lines audit log.
fn gateway_events(d: &Deployment, id: &str) -> usize {
    let log =
        std::fs::read_to_string(d.root.path().join("gw-data/audit.jsonl")).unwrap_or_default();
    log.lines().filter(|line| line.contains(id)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_a_killed_mid_session_the_gateway_and_the_cli_carry_on_through_b() {
    let mut d = deploy(&["a", "b"]).await;
    let db = PgPool::connect(&d.cluster.url()).await.expect("connect");
    let both = format!("{},{}", d.a, d.b);
    let mut child = cli(&d.home, &both, &d.alice, &WATCH);
    child.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = child.spawn().expect("pam access -w");
    wait_until(
        "the watch to reach the cluster",
        Duration::from_secs(30),
        || d.double.open_streams() > 0,
    )
    .await;
    let id = active_session(&d, &d.b.clone()).await;
    // The gateway uploads to A until A dies: its first events are in before the kill.
    let mut before = (0, 0, 0, 0);
    for _ in 0..300 {
        before = stored_events(&db, &id).await;
        if before.0 > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(before.0 > 0, "no event of {id} reached the database");

    d.replica_a.start_kill().expect("SIGKILL replica A");
    d.replica_a.wait().await.expect("replica A gone");
    // A few of the CLI's once-a-second polls and the gateway's uploads happen without A.
    let pod = nginx_pod_names().remove(0);
    d.double.emit_pod_event("default", &pod);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(d.double.open_streams(), 1, "the watch outlives replica A");

    // The gateway's change feed now waits on B, so B's terminate reaches it.
    let cut = terminate_and_time_the_cut(&d, &d.b.clone(), &id).await;
    println!("A killed; terminate on B: watch cut {cut:?} after the answer");
    assert!(cut <= CUT_BOUND, "cut after {cut:?}");
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("pam access ended")
        .expect("pam access output");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(
        stdout.matches(pod.as_str()).count(),
        2,
        "the watch listed {pod}, then its change made after the kill: {stdout}"
    );
    assert!(
        !stderr.contains("cannot check the session status"),
        "the CLI lost track of its session: {stderr}"
    );

    // Every event the gateway recorded is in the database once, the chain whole and sealed.
    let mut stored = before;
    let mut recorded = 0;
    for _ in 0..300 {
        stored = stored_events(&db, &id).await;
        recorded = gateway_events(&d, &id);
        if stored.0 as usize == recorded && stored.0 > before.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (rows, distinct, low, high) = stored;
    println!(
        "{id}: {rows} events in the database ({} before the kill), {recorded} recorded",
        before.0
    );
    assert!(
        rows > before.0,
        "events after the kill reached B: {stored:?}"
    );
    assert_eq!(
        rows as usize, recorded,
        "each recorded event stored: {stored:?}"
    );
    assert_eq!(
        (distinct, high - low + 1),
        (rows, rows),
        "no gap, no repeat"
    );
    let verify = output_of(
        cli(&d.home, &d.b, &d.admin, &["pam", "sessions", "verify", &id]),
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(verify.code, Some(0), "{}{}", verify.stdout, verify.stderr);
    assert!(
        verify
            .stdout
            .starts_with(&format!("intact ({rows} events, head signed by KMS")),
        "{}",
        verify.stdout
    );
    let show = json(&d.home, &d.b, &d.admin, &["pam", "sessions", "show", &id]).await;
    assert_eq!(show["status"], "terminated");
    assert!(commands(&show).iter().any(|c| c == "kubectl get"), "{show}");
    db.close().await;
}
