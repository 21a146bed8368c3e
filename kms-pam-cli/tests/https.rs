//! KMS over the network (issue 28, point 8): the real processes with KMS serving HTTPS with a
//! private CA's certificate, kubectl through it; and the CLI and the gateway refusing a plain
//! `http://` KMS on another host before they send anything.

use std::process::Stdio;
use std::time::Duration;

use kms_pam_tests::apiserver::{nginx_pod_names, ApiServerDouble, DoubleConfig};
use tokio::net::TcpListener;
use tokio::process::Command;

use crate::support::procs::{gateway_bin, output_of, Out};
use crate::support::world::{access, finish, kill, sqlite, wait_file, world_with};
use crate::support::BIN as CLI;

/// The whole path with KMS on HTTPS: the CLI (`KMS_PAM_KMS_CA`) and the gateway (`--kms-ca`)
/// trust KMS's private CA; enrollment, the credential and `pam access` with kubectl all go over
/// it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_works_with_kms_served_over_https_by_a_private_ca() {
    let double = ApiServerDouble::start(DoubleConfig::default())
        .await
        .expect("double");
    let (world, mut server, mut gateway) = world_with(&double, true).await;
    assert!(world.url.starts_with("https://127.0.0.1:"), "{}", world.url);
    let pod = nginx_pod_names().remove(0);
    let out = finish(access(&world, "kubectl get pods")).await;
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains(&pod), "{}", out.stdout);
    // Without the CA the CLI refuses KMS's certificate.
    let mut untrusting = world.command(&["whoami"]);
    untrusting.env_remove("KMS_PAM_KMS_CA");
    let out = output_of(untrusting, Duration::from_secs(30)).await;
    assert_ne!(out.code, Some(0), "{}", out.stdout);
    assert!(out.stderr.contains("cannot reach KMS"), "{}", out.stderr);
    kill(&mut gateway).await;
    kill(&mut server).await;
    double.shutdown().await;
}

/// This machine's address on its default route (not loopback), if it has one; the UDP
/// "connection" sends nothing.
fn non_loopback_ip() -> Option<std::net::IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

fn assert_refused_saying_why(out: &Out, url: &str) {
    assert_ne!(out.code, Some(0), "{}", out.stdout);
    for part in [url, "in clear", "https://", "--insecure-http"] {
        assert!(out.stderr.contains(part), "{part}: {}", out.stderr);
    }
}

/// Someone on the network reads what crosses plain HTTP: the API token, the gateway token, the
/// service-account credential. Given `http://` to another host, the CLI and the gateway refuse
/// before they connect; `--insecure-http` is how a lab says it means it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_and_the_gateway_refuse_plain_http_to_another_host_before_sending() {
    let listener = TcpListener::bind("0.0.0.0:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let host = non_loopback_ip().map_or_else(|| "kms.example.com".to_owned(), |ip| ip.to_string());
    let url = format!("http://{host}:{port}");
    let home = tempfile::tempdir().expect("home");
    let cli = |args: &[&str]| {
        let mut command = Command::new(CLI);
        command
            .args(args)
            .env("HOME", home.path())
            .env("XDG_CONFIG_HOME", home.path().join(".config"))
            .env_remove("KMS_PAM_URL")
            .env_remove("KMS_PAM_KMS_CA")
            .env("KMS_PAM_TOKEN", "kmsu_never-sent")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    };
    let out = output_of(cli(&["--url", &url, "whoami"]), Duration::from_secs(30)).await;
    assert_refused_saying_why(&out, &url);
    assert!(!out.stderr.contains("kmsu_never-sent"), "{}", out.stderr);
    let out = output_of(
        cli(&["pam", "access", "prod/admin", "--url", &url, "--", "true"]),
        Duration::from_secs(30),
    )
    .await;
    assert_refused_saying_why(&out, &url);

    let mut gateway = Command::new(gateway_bin());
    gateway
        .args([
            "--kms-url",
            &url,
            "--name",
            "gw1",
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--enroll-token", "kmse_never-sent", "--data-dir"])
        .arg(home.path().join("gw-data"))
        .env_remove("KMS_PAM_KMS_CA")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = output_of(gateway, Duration::from_secs(30)).await;
    assert_refused_saying_why(&out, &url);
    assert!(
        !home.path().join("gw-data").join("gateway.token").exists(),
        "nothing enrolled"
    );
    let accepted = tokio::time::timeout(Duration::from_millis(500), listener.accept()).await;
    assert!(accepted.is_err(), "a refusing client connected");

    // Told so, the CLI goes ahead (and so reaches the listener), as it always did for loopback.
    if host != "kms.example.com" {
        let mut told = cli(&["--insecure-http", "--url", &url, "whoami"]);
        told.stdout(Stdio::null()).stderr(Stdio::null());
        let mut child = told.spawn().expect("start kms-pam");
        let accepted = tokio::time::timeout(Duration::from_secs(10), listener.accept()).await;
        assert!(accepted.is_ok(), "--insecure-http did not connect");
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
}

/// A gateway enrolled before credentials were sealed has no sealing key, and KMS holds none for
/// it: at its next start it makes one (0600, beside its audit key) and registers it, and sessions
/// work again; KMS never gave it the token in clear meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_enrolled_before_sealing_registers_its_key_at_the_next_start() {
    use std::os::unix::fs::PermissionsExt as _;

    let double = ApiServerDouble::start(DoubleConfig::default())
        .await
        .expect("double");
    let (world, mut server, mut gateway) = world_with(&double, false).await;
    let key_file = world.home.path().join("gw-data").join("sealing.key");
    assert!(key_file.exists(), "made at enrollment");
    kill(&mut gateway).await;
    // As before this change: no key file, no key at KMS.
    std::fs::remove_file(&key_file).expect("remove the sealing key");
    sqlite(
        &world.kms_data().join("kms.db"),
        "DELETE FROM gateway_sealing_keys",
    );
    let mut gateway = world.start_gateway(None);
    wait_file(&key_file).await;
    let mode = std::fs::metadata(&key_file)
        .expect("key")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let out = finish(access(&world, "kubectl get pods")).await;
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    kill(&mut gateway).await;
    kill(&mut server).await;
    double.shutdown().await;
}
