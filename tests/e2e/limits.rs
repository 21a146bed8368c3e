//! The listeners' limits on the real path (mutual-TLS tunnel): a big header is answered without
//! cutting the session's other streams; methods and targets kubectl never uses are refused; a
//! slow-loris crowd on the loopback proxy and the gateway is closed within the header timeout
//! while kubectl keeps working.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use kms_pam::transport::GatewayTransport;
use kms_pam_tests::apiserver::send_raw;
use kms_pam_tests::harness::{InProcessPath, PathOptions, Tunnel};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::support::read_lines;

async fn tls_path() -> InProcessPath {
    InProcessPath::start_with(PathOptions {
        tunnel: Tunnel::Tls,
        ..PathOptions::default()
    })
    .await
}

fn raw(path: &InProcessPath, method: &str, target: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(target)
        .header(
            "authorization",
            format!("Bearer {}", path.local_token.expose()),
        )
        .body(Full::new(Bytes::new()))
        .expect("request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_header_is_answered_and_the_sessions_watch_survives() {
    let path = tls_path().await;
    let mut watch = path.kubectl.spawn(&["get", "pods", "-w"]);
    let stdout = watch.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let initial = 1 + kms_pam_tests::apiserver::nginx_pod_names().len();
    let got = read_lines(&mut lines, initial + 1, Duration::from_secs(20)).await;
    assert!(got.len() > initial, "{got:?}");

    let mut big = raw(&path, "GET", "/api/v1/namespaces/default/pods");
    let value = "x".repeat(64 * 1024);
    big.headers_mut().insert(
        "x-big",
        http::HeaderValue::from_str(&value).expect("header"),
    );
    let answer = send_raw(&path.local_url, &path.local_ca_pem, big)
        .await
        .expect("answered");
    assert_eq!(answer.status(), StatusCode::OK, "{:?}", answer.body());

    // Past the loopback proxy's limit (512 KiB): refused there, with a 431.
    let mut huge = raw(&path, "GET", "/api/v1/namespaces/default/pods");
    let value = "x".repeat(700 * 1024);
    huge.headers_mut().insert(
        "x-big",
        http::HeaderValue::from_str(&value).expect("header"),
    );
    let refused = send_raw(&path.local_url, &path.local_ca_pem, huge).await;
    if let Ok(answer) = refused {
        assert_eq!(answer.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }

    // The tunnel is the same one: the watch is still open and delivers events.
    let more = read_lines(&mut lines, 1, Duration::from_secs(20)).await;
    assert_eq!(more.len(), 1, "the watch was cut");
    assert!(
        watch.try_wait().expect("wait").is_none(),
        "kubectl -w exited"
    );
    let get = path.kubectl.run(&["get", "pods"]).await;
    assert!(get.success(), "{}", get.stderr);
    watch.kill().await.expect("kill");
    path.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn methods_and_targets_kubectl_never_uses_never_reach_the_cluster() {
    let path = tls_path().await;
    for (method, target) in [
        ("CONNECT", "10.0.0.1:443"),
        ("OPTIONS", "*"),
        ("TRACE", "/api"),
    ] {
        let answer = send_raw(
            &path.local_url,
            &path.local_ca_pem,
            raw(&path, method, target),
        )
        .await
        .expect("answered");
        assert!(
            answer.status() == StatusCode::METHOD_NOT_ALLOWED
                || answer.status() == StatusCode::BAD_REQUEST,
            "{method} {target}: {}",
            answer.status()
        );
    }
    let reached: Vec<String> = path
        .double
        .requests()
        .iter()
        .map(|r| r.method.clone())
        .collect();
    assert!(
        !reached
            .iter()
            .any(|m| m == "CONNECT" || m == "OPTIONS" || m == "TRACE"),
        "{reached:?}"
    );
    path.shutdown().await;
}

/// Writes one byte a second until the server closes the connection; returns when it did
/// (`None` if it was still open after `give_up`).
async fn dribble<S>(mut stream: S, give_up: Duration) -> Option<Duration>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let started = Instant::now();
    let request = b"GET /api/v1/namespaces/default/pods HTTP/1.1\r\nHost: x\r\n";
    let mut buf = [0u8; 512];
    for byte in request.iter().cycle() {
        if started.elapsed() > give_up {
            return None;
        }
        if stream.write_all(&[*byte]).await.is_err() || stream.flush().await.is_err() {
            return Some(started.elapsed());
        }
        let closed = tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await;
        match closed {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {} // an error page; the close follows
            Err(_) => {}    // nothing yet: next byte
        }
    }
    None
}

fn local_tls(ca_pem: &str) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("pem")).expect("root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// Header timeout of both listeners (10 s), plus room for a loaded machine.
const CLOSED_WITHIN: Duration = Duration::from_secs(16);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_loris_crowd_is_closed_within_the_header_timeout_and_kubectl_keeps_working() {
    let path = tls_path().await;
    let local: SocketAddr = path
        .local_url
        .trim_start_matches("https://")
        .parse()
        .expect("local addr");
    let (gateway, session_connector) = path.tunnel.clone().expect("TLS tunnel");
    let tls = local_tls(&path.local_ca_pem);
    let mut crowd = tokio::task::JoinSet::new();
    for i in 0..500 {
        let (tls, connector) = (tls.clone(), session_connector.clone());
        crowd.spawn(async move {
            let give_up = CLOSED_WITHIN + Duration::from_secs(4);
            match i % 4 {
                // Bytes of a TLS handshake that never completes.
                0 => dribble(TcpStream::connect(local).await.expect("connect"), give_up).await,
                1 => dribble(TcpStream::connect(gateway).await.expect("connect"), give_up).await,
                // A completed handshake, then an HTTP head one byte a second.
                2 => {
                    let tcp = TcpStream::connect(local).await.expect("connect");
                    let name = ServerName::try_from("127.0.0.1").expect("name");
                    let stream = tls.connect(name, tcp).await.expect("local TLS");
                    dribble(stream, give_up).await
                }
                _ => {
                    let stream = connector.connect().await.expect("session tunnel");
                    dribble(stream, give_up).await
                }
            }
        });
    }
    // While the crowd holds on, kubectl is served.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let get = path.kubectl.run(&["get", "pods"]).await;
    assert!(get.success(), "kubectl during the attack: {}", get.stderr);

    let mut closed_after = Vec::new();
    while let Some(outcome) = crowd.join_next().await {
        closed_after.push(outcome.expect("join"));
    }
    let open = closed_after.iter().filter(|c| c.is_none()).count();
    assert_eq!(open, 0, "{open} slow connections were never closed");
    let slowest = closed_after
        .iter()
        .flatten()
        .max()
        .copied()
        .unwrap_or_default();
    assert!(
        slowest <= CLOSED_WITHIN,
        "the slowest close took {slowest:?}"
    );
    let get = path.kubectl.run(&["get", "pods"]).await;
    assert!(get.success(), "kubectl after the attack: {}", get.stderr);
    path.shutdown().await;
}
