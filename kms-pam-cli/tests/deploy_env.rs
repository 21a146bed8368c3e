//! Configured the way an orchestrator configures them: `kms-pam server`, `kms-pam relay serve`
//! and `kms-pam-gateway` started with no flags at all, everything from environment variables and
//! the secrets (the database URL, the enrollment token) from files. Each answers `/healthz` and
//! `/readyz` through the binaries' own `healthcheck` subcommand, logs JSON lines, and no secret
//! is on a command line. The gateway reaches its relay through the `HTTPS_PROXY` it is given.
//! Stopping the database makes the server not ready.

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

use crate::support::pg::Cluster;
use crate::support::procs::{free_port, gateway_bin, output_of};
use crate::support::world::wait_until;
use crate::support::BIN as CLI;

/// `program` with only `vars` (and PATH, HOME) in its environment and no arguments but `args`.
fn service(
    program: &Path,
    args: &[&str],
    vars: &[(&str, String)],
    home: &Path,
    log: &str,
) -> Child {
    let log = std::fs::File::create(home.join(log)).expect("log");
    let mut command = Command::new(program);
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .kill_on_drop(true);
    for (name, value) in vars {
        command.env(name, value);
    }
    command.spawn().expect("start a service")
}

/// Whether `program healthcheck --url URL` passes.
async fn healthy(program: &Path, url: &str) -> bool {
    let mut command = Command::new(program);
    command
        .args(["healthcheck", "--url", url])
        .kill_on_drop(true);
    output_of(command, Duration::from_secs(10)).await.code == Some(0)
}

/// An HTTP CONNECT proxy (what `HTTPS_PROXY` names) that records the targets it was asked for.
async fn connect_proxy() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let asked = Arc::new(Mutex::new(Vec::new()));
    let seen = asked.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut client = BufReader::new(client);
                let mut head = String::new();
                while !head.ends_with("\r\n\r\n") {
                    if client.read_line(&mut head).await.unwrap_or(0) == 0 {
                        return;
                    }
                }
                let target = head
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_owned();
                seen.lock().expect("proxy").push(target.clone());
                let Ok(mut server) = TcpStream::connect(&target).await else {
                    return;
                };
                let mut client = client.into_inner();
                let ok = b"HTTP/1.1 200 Connection established\r\n\r\n";
                if client.write_all(ok).await.is_ok() {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    });
    (format!("http://{addr}"), asked)
}

fn cmdline(child: &Child) -> String {
    let pid = child.id().expect("pid");
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).expect("cmdline");
    String::from_utf8_lossy(&raw).replace('\0', " ")
}

fn all_json_lines(home: &Path, log: &str) {
    let text = std::fs::read_to_string(home.join(log)).expect("log");
    assert!(!text.trim().is_empty(), "{log} is empty");
    for line in text.lines() {
        let parsed: Result<serde_json::Value, _> = serde_json::from_str(line);
        assert!(parsed.is_ok(), "{log}: not a JSON line: {line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_run_from_environment_and_secret_files_alone() {
    let cluster = Cluster::start().await;
    let home = tempfile::tempdir().expect("home");
    let home = home.path();
    let cli = Path::new(CLI);
    let database_file = home.join("database-url");
    std::fs::write(&database_file, format!("{}\n", cluster.url())).expect("database file");

    let kms_port = free_port().await;
    let kms_url = format!("http://127.0.0.1:{kms_port}");
    let data = home.join("kms-data");
    let server = service(
        cli,
        &["server"],
        &[
            ("KMS_PAM_LISTEN", format!("127.0.0.1:{kms_port}")),
            ("KMS_PAM_DATA_DIR", data.to_string_lossy().into_owned()),
            (
                "KMS_PAM_DATABASE_FILE",
                database_file.to_string_lossy().into_owned(),
            ),
            ("KMS_PAM_LOG_FORMAT", "json".to_owned()),
        ],
        home,
        "server.log",
    );
    let ready = format!("{kms_url}/readyz");
    wait_until("the server to be ready", || healthy(cli, &ready)).await;
    assert!(healthy(cli, &format!("{kms_url}/healthz")).await);
    let admin = std::fs::read_to_string(data.join("admin.token")).expect("admin token");
    let admin = admin.trim();
    let run = |args: &[&str]| {
        let mut command = Command::new(CLI);
        command
            .args(args)
            .env("HOME", home)
            .env("KMS_PAM_URL", &kms_url)
            .env("KMS_PAM_TOKEN", admin)
            .kill_on_drop(true);
        output_of(command, Duration::from_secs(30))
    };
    let created = run(&["gateway", "create", "gw1", "-o", "json"]).await;
    assert_eq!(created.code, Some(0), "{}", created.stderr);
    let created: serde_json::Value = serde_json::from_str(&created.stdout).expect("json");
    let token = created["enrollment_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let token_file = home.join("enroll-token");
    std::fs::write(&token_file, &token).expect("token file");
    let cert_dir = home.join("relay");
    let cert_dir_arg = cert_dir.to_string_lossy().into_owned();
    let issued = run(&[
        "relay",
        "certificate",
        "--name",
        "r1",
        "--host",
        "127.0.0.1",
        "--out",
        &cert_dir_arg,
    ]);
    let issued = issued.await;
    assert_eq!(issued.code, Some(0), "{}", issued.stderr);

    let (relay_port, relay_metrics) = (free_port().await, free_port().await);
    let relay = service(
        cli,
        &["relay", "serve"],
        &[
            ("KMS_PAM_LISTEN", format!("127.0.0.1:{relay_port}")),
            ("KMS_PAM_CERT_DIR", cert_dir_arg.clone()),
            (
                "KMS_PAM_METRICS_LISTEN",
                format!("127.0.0.1:{relay_metrics}"),
            ),
            ("KMS_PAM_LOG_FORMAT", "json".to_owned()),
        ],
        home,
        "relay.log",
    );
    let relay_ready = format!("http://127.0.0.1:{relay_metrics}/readyz");
    wait_until("the relay to be ready", || healthy(cli, &relay_ready)).await;

    let gateway_metrics = free_port().await;
    let gateway_bin = gateway_bin();
    let (proxy, proxied) = connect_proxy().await;
    let gateway = service(
        &gateway_bin,
        &[],
        &[
            ("KMS_PAM_URL", kms_url.clone()),
            ("KMS_PAM_NAME", "gw1".to_owned()),
            ("KMS_PAM_RELAY", format!("127.0.0.1:{relay_port}")),
            (
                "KMS_PAM_ENROLL_TOKEN_FILE",
                token_file.to_string_lossy().into_owned(),
            ),
            (
                "KMS_PAM_DATA_DIR",
                home.join("gw-data").to_string_lossy().into_owned(),
            ),
            (
                "KMS_PAM_METRICS_LISTEN",
                format!("127.0.0.1:{gateway_metrics}"),
            ),
            ("KMS_PAM_LOG_FORMAT", "json".to_owned()),
            ("HTTPS_PROXY", proxy),
        ],
        home,
        "gateway.log",
    );
    let gateway_ready = format!("http://127.0.0.1:{gateway_metrics}/readyz");
    wait_until(
        "the gateway to be ready (enrolled, its relay tunnel up)",
        || healthy(&gateway_bin, &gateway_ready),
    )
    .await;
    let listed = run(&["gateway", "list", "-o", "json"]).await;
    assert!(listed.stdout.contains("\"online\""), "{}", listed.stdout);
    let asked = proxied.lock().expect("proxy").clone();
    assert!(
        asked.contains(&format!("127.0.0.1:{relay_port}")),
        "the gateway dialled its relay through HTTPS_PROXY: {asked:?}"
    );

    // No secret on any command line.
    for (child, name) in [
        (&server, "server"),
        (&relay, "relay"),
        (&gateway, "gateway"),
    ] {
        let line = cmdline(child);
        for secret in [token.as_str(), &cluster.url(), admin] {
            assert!(
                !line.contains(secret),
                "{name}'s command line holds a secret: {line}"
            );
        }
    }
    for log in ["server.log", "relay.log", "gateway.log"] {
        all_json_lines(home, log);
    }

    // The store goes away: the server is alive, and not ready.
    drop(cluster);
    wait_until("the server to say it is not ready", || async {
        !healthy(cli, &ready).await
    })
    .await;
    assert!(
        healthy(cli, &format!("{kms_url}/healthz")).await,
        "alive all the same"
    );
    let probe = {
        let mut command = Command::new(CLI);
        command.args(["healthcheck", "--url", &ready]);
        output_of(command, Duration::from_secs(10)).await
    };
    assert!(probe.stderr.contains("503"), "{}", probe.stderr);
}

#[tokio::test]
async fn healthcheck_failures_are_one_clear_line() {
    let port = free_port().await;
    for (url, expected) in [
        (format!("http://127.0.0.1:{port}/healthz"), "refused"),
        (
            "https://127.0.0.1:1/healthz".to_owned(),
            "plain http:// only",
        ),
        ("not a url".to_owned(), "not a url"),
    ] {
        let mut command = Command::new(CLI);
        command.args(["healthcheck", "--url", &url]);
        let out = output_of(command, Duration::from_secs(10)).await;
        assert_eq!(out.code, Some(1), "{url}");
        assert!(out.stderr.contains(expected), "{url}: {}", out.stderr);
        assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    }
}
