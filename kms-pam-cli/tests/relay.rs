//! Outbound-only gateways with real processes: `kms-pam server`, two `kms-pam relay serve`, a
//! `kms-pam-gateway` that opens no tunnel port and dials both relays, and the real kubectl
//! through `pam access`: get, watch, logs -f, exec and cp. A tap in front of one relay records
//! both of its legs; neither carries the service-account token or kubectl's plaintext.

use std::collections::HashSet;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use kms_pam_tests::apiserver::{nginx_pod_names, ApiServerDouble, DoubleConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

use crate::support::procs::{free_port, gateway_bin};
use crate::support::world::{
    access, active_session, add_prod, finish, gateway_log, kill, start_kms_only, wait_until, World,
};
use crate::support::BIN as CLI;

/// A TCP proxy that records every byte it forwards, both ways.
#[derive(Clone)]
struct Tap {
    addr: String,
    bytes: Arc<Mutex<Vec<u8>>>,
}

impl Tap {
    async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let tap = Self {
            addr: listener.local_addr().expect("addr").to_string(),
            bytes: Arc::default(),
        };
        let bytes = tap.bytes.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&target).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pump(cr, sw, bytes.clone()));
                tokio::spawn(pump(sr, cw, bytes.clone()));
            }
        });
        tap
    }

    fn saw(&self, needle: &str) -> bool {
        let bytes = self.bytes.lock().expect("tap");
        bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
    }

    fn len(&self) -> usize {
        self.bytes.lock().expect("tap").len()
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    bytes: Arc<Mutex<Vec<u8>>>,
) {
    let mut buf = vec![0u8; 32 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 {
            return;
        }
        bytes.lock().expect("tap").extend_from_slice(&buf[..n]);
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// A relay's open relayed streams, from its `/metrics`.
async fn relayed_streams(metrics: &str) -> u64 {
    let mut tcp = TcpStream::connect(metrics).await.expect("relay metrics");
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {metrics}\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.expect("scrape");
    let mut text = String::new();
    tcp.read_to_string(&mut text).await.expect("scrape");
    text.lines()
        .find_map(|l| l.strip_prefix("kms_pam_relay_open_streams "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no open_streams in {text}"))
}

/// `kms-pam relay certificate` then `kms-pam relay serve`: the relay process and its address;
/// its metrics are at [`metrics_of`].
async fn start_relay(world: &World, name: &str) -> (Child, String) {
    let dir = world.home.path().join(name);
    let dir_arg = dir.to_string_lossy().into_owned();
    world
        .ok(&[
            "relay",
            "certificate",
            "--name",
            name,
            "--host",
            "127.0.0.1",
            "--out",
            &dir_arg,
        ])
        .await;
    let addr = format!("127.0.0.1:{}", free_port().await);
    let log = std::fs::File::create(world.home.path().join(format!("{name}.log"))).expect("log");
    let metrics = format!("127.0.0.1:{}", free_port().await);
    std::fs::write(world.home.path().join(format!("{name}.metrics")), &metrics).expect("note");
    let child = Command::new(CLI)
        .args(["relay", "serve", "--listen", &addr, "--cert-dir", &dir_arg])
        .args(["--metrics-listen", &metrics])
        .env("HOME", world.home.path())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .expect("start kms-pam relay serve");
    (child, addr)
}

/// Where relay `name`'s metrics are served.
fn metrics_of(world: &World, name: &str) -> String {
    std::fs::read_to_string(world.home.path().join(format!("{name}.metrics"))).expect("metrics")
}

/// The TCP ports process `pid` listens on (from /proc: its socket inodes in LISTEN state).
fn listening_ports(pid: u32) -> HashSet<u16> {
    let mut inodes = HashSet::new();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).expect("fds");
    for fd in fds.flatten() {
        if let Ok(target) = std::fs::read_link(fd.path()) {
            let target = target.to_string_lossy().into_owned();
            if let Some(inode) = target
                .strip_prefix("socket:[")
                .and_then(|t| t.strip_suffix(']'))
            {
                inodes.insert(inode.to_owned());
            }
        }
    }
    let mut ports = HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local_address, st (0A = LISTEN), inode.
            if fields.len() > 9 && fields[3] == "0A" && inodes.contains(fields[9]) {
                if let Some((_, port)) = fields[1].rsplit_once(':') {
                    ports.insert(u16::from_str_radix(port, 16).expect("hex port"));
                }
            }
        }
    }
    ports
}

fn start_gateway(world: &World, enroll: &str, relays: &[&str], metrics: u16) -> Child {
    let mut gateway = Command::new(gateway_bin());
    gateway
        .args([
            "--kms-url",
            &world.url,
            "--name",
            "gw1",
            "--enroll-token",
            enroll,
        ])
        .args(["--metrics-listen", &format!("127.0.0.1:{metrics}")])
        .arg("--data-dir")
        .arg(world.home.path().join("gw-data"))
        .env_remove("KMS_PAM_KMS_CA")
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .stdout(Stdio::null())
        .stderr(gateway_log(world.home.path()))
        .kill_on_drop(true);
    for relay in relays {
        gateway.args(["--relay", relay]);
    }
    gateway.spawn().expect("start kms-pam-gateway")
}

fn log_of(home: &Path, name: &str) -> String {
    std::fs::read_to_string(home.join(name)).unwrap_or_default()
}

/// [`wait_until`], showing the gateway's and the relays' logs when it times out.
async fn wait_or_show<F: std::future::Future<Output = bool>>(
    world: &World,
    what: &str,
    mut check: impl FnMut() -> F,
) {
    for _ in 0..300 {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let home = world.home.path();
    panic!(
        "timed out waiting for {what}\ngateway:\n{}\nr1:\n{}\nr2:\n{}",
        log_of(home, "gateway.log"),
        log_of(home, "r1.log"),
        log_of(home, "r2.log")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_works_through_relays_to_a_gateway_without_a_listening_socket() {
    let double = ApiServerDouble::start(DoubleConfig::default())
        .await
        .expect("double");
    let (world, _server) = start_kms_only(false).await;
    let (mut r1, r1_addr) = start_relay(&world, "r1").await;
    let (_r2, r2_addr) = start_relay(&world, "r2").await;
    let tap = Tap::start(r1_addr.clone()).await;
    let enroll = world.new_gateway("gw1").await;
    let metrics = free_port().await;
    let gateway = start_gateway(&world, &enroll, &[&tap.addr, &r2_addr], metrics);
    wait_or_show(&world, "the gateway's tunnels to both relays", || async {
        let list = world.json(&["gateway", "list", "-o", "json"]).await;
        let reach = &list[0]["reach"];
        reach["direct"] == false
            && reach["relays"]
                .as_array()
                .is_some_and(|r| r.len() == 2 && r.iter().all(|l| l["connected"] == true))
    })
    .await;
    let table = world.ok(&["gateway", "list"]).await;
    assert!(
        table.contains("relays") && table.contains("(up)"),
        "{table}"
    );
    let pid = gateway.id().expect("gateway pid");
    assert_eq!(
        listening_ports(pid),
        HashSet::from([metrics]),
        "the gateway listens on its metrics port only"
    );
    add_prod(&world, &double).await;

    let pod = nginx_pod_names().remove(0);
    let script = format!(
        "set -e; kubectl get pods; \
         timeout 3 kubectl get pods -w >/dev/null || test $? = 124; \
         timeout 2 kubectl logs -f {pod} >/dev/null || true; \
         kubectl exec {pod} -- echo hello-from-exec; \
         echo data > local.txt; kubectl cp local.txt {pod}:/tmp/local.txt"
    );
    let out = finish(access(&world, &script)).await;
    let logs = log_of(world.home.path(), "gateway.log");
    assert_eq!(
        out.code,
        Some(0),
        "{}{}\ngateway: {logs}",
        out.stdout,
        out.stderr
    );
    assert!(out.stdout.contains(&pod), "{}", out.stdout);
    assert!(out.stdout.contains("hello-from-exec"), "{}", out.stdout);

    // The CLI used the first relay KMS named: the tapped one. Both of its legs are ciphertext.
    assert!(
        tap.len() > 10_000,
        "the session went through the tap: {} bytes",
        tap.len()
    );
    for plaintext in [
        double.token(),
        "hello-from-exec",
        "/api/v1/namespaces",
        "kubectl/v1",
    ] {
        assert!(
            !tap.saw(plaintext),
            "the relay's streams carry {plaintext:?}"
        );
    }

    // One of two relays SIGKILLed under a running session: its next command reaches the
    // gateway through the other relay, and the CLI says so.
    let (first, go) = (
        world.home.path().join("first"),
        world.home.path().join("go"),
    );
    let script = format!(
        "set -e; kubectl get pods >/dev/null; touch {first}; \
         while [ ! -f {go} ]; do sleep 0.1; done; kubectl get pods",
        first = first.display(),
        go = go.display()
    );
    let running = access(&world, &script);
    wait_until("the session's first command", || {
        let done = first.exists();
        async move { done }
    })
    .await;
    kill(&mut r1).await;
    std::fs::write(&go, "").expect("go");
    let out = finish(running).await;
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains(&pod), "{}", out.stdout);
    assert!(
        out.stderr
            .contains(&format!("reached gateway gw1 through relay {r2_addr}")),
        "{}",
        out.stderr
    );
    // KMS hears the relay is gone; new sessions go straight to the other one.
    wait_or_show(&world, "KMS to hear the relay is gone", || async {
        let list = world.json(&["gateway", "list", "-o", "json"]).await;
        list[0]["reach"]["relays"][0]["connected"] == false
    })
    .await;
    let out = finish(access(&world, "kubectl get pods")).await;
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_termination_cuts_a_relayed_watch_at_gateway_and_relay_within_a_second() {
    let double = ApiServerDouble::start(DoubleConfig::default())
        .await
        .expect("double");
    let (world, _server) = start_kms_only(false).await;
    let (_relay, relay_addr) = start_relay(&world, "r1").await;
    let enroll = world.new_gateway("gw1").await;
    let _gateway = start_gateway(&world, &enroll, &[&relay_addr], free_port().await);
    wait_or_show(&world, "the gateway's tunnel to the relay", || async {
        let list = world.json(&["gateway", "list", "-o", "json"]).await;
        list[0]["reach"]["relays"][0]["connected"] == true
    })
    .await;
    add_prod(&world, &double).await;
    let watching = access(&world, "kubectl get pods -w");
    wait_or_show(&world, "the watch to reach the cluster", || {
        let open = double.open_streams() > 0;
        async move { open }
    })
    .await;
    let metrics = metrics_of(&world, "r1");
    assert!(relayed_streams(&metrics).await >= 1);
    let id = active_session(&world).await;

    world.ok(&["pam", "sessions", "terminate", &id]).await;
    let answered = std::time::Instant::now();
    wait_or_show(
        &world,
        "the watch to be cut at the cluster and the relay",
        || async { double.open_streams() == 0 && relayed_streams(&metrics).await == 0 },
    )
    .await;
    let cut = answered.elapsed();
    assert!(
        cut <= std::time::Duration::from_secs(1),
        "cut {cut:?} after the terminate"
    );
    let out = finish(watching).await;
    assert_ne!(out.code, Some(0));
    assert!(out.stderr.contains("terminated"), "{}", out.stderr);
}
