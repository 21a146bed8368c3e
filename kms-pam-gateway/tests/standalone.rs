//! The real `kms-pam-gateway` binary in standalone mode: real kubectl → loopback proxy → mutual
//! TLS → the gateway process → the API server double; metrics and health endpoints; clean exit on
//! SIGTERM; clear errors for bad configuration.

// Tests: a failed set-up panics with its reason.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use kms_pam::local::{self, LocalProxyConfig};
use kms_pam::session::SessionId;
use kms_pam::tls::{CertificateAuthority, LocalServingCert, SessionCertSpec, SessionKey};
use kms_pam::transport::tls::TlsConnector;
use kms_pam::Secret;
use kms_pam_tests::apiserver::{ApiServerDouble, DoubleConfig};
use kms_pam_tests::kubectl::Kubectl;
use tokio::net::TcpListener;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

const BIN: &str = env!("CARGO_BIN_EXE_kms-pam-gateway");

async fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("addr").port()
}

async fn http_get(addr: &str, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.ok()?;
    let mut out = String::new();
    tcp.read_to_string(&mut out).await.ok()?;
    Some(out)
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write fixture");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_gateway_serves_kubectl_and_metrics() {
    let double = ApiServerDouble::start(DoubleConfig::default())
        .await
        .expect("double");
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = CertificateAuthority::generate("test KMS CA", Duration::from_secs(3600)).expect("CA");
    let gw = ca
        .issue_server_cert(&["127.0.0.1".to_owned()], Duration::from_secs(3600))
        .expect("gateway cert");
    write(dir.path(), "ca.pem", ca.cert_pem());
    write(dir.path(), "gw.pem", &gw.cert_pem);
    write(dir.path(), "gw.key", gw.key.expose_secret());
    write(dir.path(), "cluster-ca.pem", double.ca_pem());
    write(dir.path(), "sa-token", double.token());
    let session_id = SessionId::new_random();
    let expires_at = SystemTime::now() + Duration::from_secs(600);
    let config = format!(
        "name: gw-bin\ntls: {{ca_cert: ca.pem, cert: gw.pem, key: gw.key}}\n\
         resources:\n  - {{name: double, url: '{}', ca_cert: cluster-ca.pem}}\n\
         accounts:\n  - {{resource: double, name: admin, token_file: sa-token}}\n\
         sessions:\n  - {{id: '{session_id}', user: alice, resource: double, account: admin, expires_at: '{}'}}\n",
        double.url(),
        kms_pam::time::format_rfc3339(expires_at)
    );
    write(dir.path(), "gateway.yaml", &config);

    let (listen, metrics) = (free_port().await, free_port().await);
    let audit_log = dir.path().join("audit.jsonl");
    let mut gateway = Command::new(BIN)
        .arg("--config")
        .arg(dir.path().join("gateway.yaml"))
        .args(["--listen", &format!("127.0.0.1:{listen}")])
        .args(["--metrics-listen", &format!("127.0.0.1:{metrics}")])
        .arg("--audit-log")
        .arg(&audit_log)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start kms-pam-gateway");
    let metrics_addr = format!("127.0.0.1:{metrics}");
    let mut healthy = false;
    for _ in 0..100 {
        if let Some(answer) = http_get(&metrics_addr, "/healthz").await {
            healthy = answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok\n");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(healthy, "/healthz answers ok");

    // The CLI side: a session certificate from a CSR, the loopback proxy, kubectl.
    let (key, csr) = SessionKey::generate().expect("key");
    let spec = SessionCertSpec::new(
        session_id.to_string(),
        "gw-bin",
        "alice",
        SystemTime::now(),
        expires_at,
    );
    let cert = ca.sign_session_csr(&csr, &spec).expect("session cert");
    let transport = TlsConnector::from_pem(
        ca.cert_pem(),
        &cert,
        key.key_pem(),
        format!("127.0.0.1:{listen}"),
    )
    .expect("connector");
    let serving = LocalServingCert::generate(Duration::from_secs(600)).expect("local cert");
    let local_token = Secret::random(32).expect("random");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("https://{}", listener.local_addr().expect("addr"));
    let stop = CancellationToken::new();
    let proxy = tokio::spawn(local::serve(
        listener,
        LocalProxyConfig::new(
            local_token.clone(),
            serving.server_config().expect("tls"),
            Arc::new(transport),
        ),
        stop.clone().cancelled_owned(),
    ));
    let kubectl = Kubectl::new(&url, &serving.ca_pem, local_token.expose()).expect("kubeconfig");
    let pods = kubectl.run(&["get", "pods"]).await;
    assert!(
        pods.success(),
        "kubectl through the gateway binary: {}",
        pods.stderr
    );
    assert!(
        pods.stdout_str().contains("Running"),
        "{}",
        pods.stdout_str()
    );

    let text = http_get(&metrics_addr, "/metrics").await.expect("metrics");
    for needle in [
        "kms_pam_gateway_requests_total{code=\"2xx\"}",
        "kms_pam_gateway_tunnel_handshakes_total{outcome=\"ok\"} 1",
        "kms_pam_gateway_active_sessions 1",
        "kms_pam_gateway_spool_depth",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }

    // SIGTERM: a clean stop that flushes the audit log.
    let pid = gateway.id().expect("pid").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    assert!(killed.expect("kill").success());
    let status = tokio::time::timeout(Duration::from_secs(10), gateway.wait())
        .await
        .expect("gateway stopped after SIGTERM")
        .expect("wait");
    assert!(status.success(), "exit status {status}");
    let audit = std::fs::read_to_string(&audit_log).expect("audit log");
    assert!(audit.contains("\"type\":\"request_started\""), "{audit}");
    assert!(
        audit.contains("kubectl get"),
        "kubectl's command is recorded"
    );
    assert!(
        !audit.contains(double.token()),
        "the service-account token is in the audit log"
    );
    stop.cancel();
    let _ = proxy.await;
    double.shutdown().await;
}

#[tokio::test]
async fn bad_configuration_is_one_clear_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope.yaml");
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&missing)
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .await
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot read") && stderr.contains("nope.yaml"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    let usage = Command::new(BIN)
        .arg("--listen")
        .arg("not-an-address")
        .output()
        .await
        .expect("run");
    assert_eq!(usage.status.code(), Some(2), "usage errors exit 2");
}
