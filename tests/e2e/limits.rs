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

/// Writes `bytes` one a second (cycling) until the server closes the connection; returns when it
/// did (`None` if it was still open at `give_up`).
async fn dribble<S>(mut stream: S, bytes: &[u8], give_up: Instant) -> Option<Duration>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let started = Instant::now();
    let mut buf = [0u8; 512];
    for byte in bytes.iter().cycle() {
        if Instant::now() >= give_up {
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

/// An HTTP/2 connection over `stream`: `request` (if any) is sent and answered, then nothing;
/// returns when the server closed it, counted from the answer, or from the connection without a
/// request (`None`: open at `give_up`).
async fn idle_http2<S>(
    stream: S,
    request: Option<Request<Full<Bytes>>>,
    give_up: Instant,
) -> Option<Duration>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let mut started = Instant::now();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .ok()?;
    let connection = tokio::spawn(connection);
    if let Some(request) = request {
        let answer = sender.send_request(request).await.ok()?;
        drop(answer);
        started = Instant::now();
    }
    // However it ended (GOAWAY, reset), it ended.
    let _ended = tokio::time::timeout_at(give_up.into(), connection)
        .await
        .ok()?;
    Some(started.elapsed())
}

/// The first bytes a rustls client sends: a ClientHello record (`16 03 01 …`), which a server
/// waits for in full.
fn client_hello() -> Vec<u8> {
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    let name = ServerName::try_from("localhost").expect("name");
    let mut client = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
    let mut hello = Vec::new();
    while client.wants_write() {
        client.write_tls(&mut hello).expect("ClientHello");
    }
    assert_eq!(&hello[..3], &[0x16, 0x03, 0x01], "a TLS handshake record");
    hello
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

/// Every timeout a slow connection meets here (TLS handshake, first request, request head,
/// HTTP/2 idle) is 10 s at both listeners; plus room for a loaded machine.
const CLOSED_WITHIN: Duration = Duration::from_secs(16);
/// A close earlier than this was a refusal, not a timeout.
const CLOSED_AFTER_AT_LEAST: Duration = Duration::from_secs(7);
/// The crowd is held at full strength this long: a closed connection is replaced by a new one
/// until then; then the crowd leaves (connections younger than their timeout are dropped).
const SUSTAIN: Duration = Duration::from_secs(30);
/// Slow connections per listener at any time.
const CROWD: usize = 500;

/// How one slow connection misbehaves.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Slow {
    /// A TLS ClientHello one byte a second: the handshake never completes.
    Hello,
    /// A completed handshake, then an HTTP/1.1 head one byte a second.
    Head,
    /// A completed handshake, then the HTTP/2 connection preface one byte a second.
    Preface,
    /// A completed handshake and an HTTP/2 connection left idle (at the loopback proxy after an
    /// unauthenticated request; at the gateway without one: the session tunnel is kept while
    /// idle only once it served a request).
    IdleHttp2,
}

const MODES: [Slow; 4] = [Slow::Hello, Slow::Head, Slow::Preface, Slow::IdleHttp2];

/// Who the crowd is slow at.
#[derive(Clone)]
enum Target {
    Local(SocketAddr, tokio_rustls::TlsConnector),
    Gateway(SocketAddr, Arc<kms_pam::transport::tls::TlsConnector>),
}

impl Target {
    /// One slow connection: when the server closed it (`None`: it did not by `crowd_leaves` or
    /// well past its timeout).
    async fn slow_connection(
        &self,
        mode: Slow,
        hello: &[u8],
        crowd_leaves: Instant,
    ) -> Option<Duration> {
        let give_up = crowd_leaves.min(Instant::now() + CLOSED_WITHIN + Duration::from_secs(4));
        let head = b"GET /api/v1/namespaces/default/pods HTTP/1.1\r\nHost: x\r\n";
        let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
        match (self, mode) {
            (Self::Local(addr, _) | Self::Gateway(addr, _), Slow::Hello) => {
                let tcp = TcpStream::connect(addr).await.expect("connect");
                dribble(tcp, hello, give_up).await
            }
            (Self::Local(addr, tls), mode) => {
                let tcp = TcpStream::connect(addr).await.expect("connect");
                let name = ServerName::try_from("127.0.0.1").expect("name");
                let stream = tls.connect(name, tcp).await.expect("local TLS");
                match mode {
                    Slow::Head => dribble(stream, head, give_up).await,
                    Slow::Preface => dribble(stream, preface, give_up).await,
                    _ => {
                        let unauthenticated = Request::get("https://127.0.0.1/api")
                            .body(Full::new(Bytes::new()))
                            .expect("request");
                        idle_http2(stream, Some(unauthenticated), give_up).await
                    }
                }
            }
            (Self::Gateway(_, connector), mode) => {
                let stream = connector.connect().await.expect("session tunnel");
                match mode {
                    Slow::Head => dribble(stream, head, give_up).await,
                    Slow::Preface => dribble(stream, preface, give_up).await,
                    _ => idle_http2(stream, None, give_up).await,
                }
            }
        }
    }
}

/// What became of one slow connection: when the server closed it, or how old it was when the
/// crowd left without the server having closed it.
#[derive(Debug)]
enum Outcome {
    Closed(Duration),
    Open(Duration),
}

/// Keeps [`CROWD`] slow connections open at `target`, replacing each closed one until
/// [`SUSTAIN`] has passed.
fn sustain_crowd(
    target: Target,
    started: Instant,
    crowd: &mut tokio::task::JoinSet<Vec<(Slow, Outcome)>>,
) {
    let hello: Arc<[u8]> = client_hello().into();
    let crowd_leaves = started + SUSTAIN;
    for i in 0..CROWD {
        let (target, hello) = (target.clone(), hello.clone());
        crowd.spawn(async move {
            let mode = MODES[i % MODES.len()];
            let mut outcomes = Vec::new();
            while Instant::now() < crowd_leaves {
                let opened = Instant::now();
                let outcome = match target.slow_connection(mode, &hello, crowd_leaves).await {
                    Some(after) => Outcome::Closed(after),
                    None => Outcome::Open(opened.elapsed()),
                };
                outcomes.push((mode, outcome));
            }
            outcomes
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_loris_crowd_is_closed_within_the_header_timeout_and_kubectl_keeps_working() {
    let path = tls_path().await;
    let local: SocketAddr = path
        .local_url
        .trim_start_matches("https://")
        .parse()
        .expect("local addr");
    let (gateway, session_connector) = path.tunnel.clone().expect("TLS tunnel");
    let started = Instant::now();
    let mut crowd = tokio::task::JoinSet::new();
    let local_target = Target::Local(local, local_tls(&path.local_ca_pem));
    sustain_crowd(local_target, started, &mut crowd);
    sustain_crowd(
        Target::Gateway(gateway, session_connector),
        started,
        &mut crowd,
    );

    // While the crowd holds on (first wave, second wave, last wave), kubectl is served.
    for at in [2, 12, 25] {
        tokio::time::sleep_until((started + Duration::from_secs(at)).into()).await;
        let get = path.kubectl.run(&["get", "pods"]).await;
        assert!(
            get.success(),
            "kubectl at {:?} into the attack: {}",
            started.elapsed(),
            get.stderr
        );
    }

    let mut outcomes = Vec::new();
    while let Some(of_one_slot) = crowd.join_next().await {
        outcomes.extend(of_one_slot.expect("join"));
    }
    assert!(
        started.elapsed() >= SUSTAIN,
        "the crowd lasted {:?}",
        started.elapsed()
    );
    // Each connection was closed by its timeout: not refused at once (which would test nothing),
    // not kept past it; those the server had not closed when the crowd left were younger.
    let mut problems = Vec::new();
    for mode in MODES {
        let closed: Vec<Duration> = outcomes
            .iter()
            .filter_map(|(m, o)| match o {
                Outcome::Closed(after) if *m == mode => Some(*after),
                _ => None,
            })
            .collect();
        let open: Vec<Duration> = outcomes
            .iter()
            .filter_map(|(m, o)| match o {
                Outcome::Open(age) if *m == mode => Some(*age),
                _ => None,
            })
            .collect();
        let fastest = closed.iter().min().copied();
        let slowest = closed.iter().max().copied().unwrap_or_default();
        let oldest_open = open.iter().max().copied().unwrap_or_default();
        eprintln!(
            "{mode:?}: {} closed after {fastest:?} to {slowest:?}; {} open when the crowd left \
             (the oldest {oldest_open:?})",
            closed.len(),
            open.len()
        );
        if slowest > CLOSED_WITHIN || oldest_open > CLOSED_WITHIN {
            problems.push(format!(
                "{mode:?}: closed after up to {slowest:?}, open after {oldest_open:?}"
            ));
        }
        if let Some(fastest) = fastest.filter(|f| *f < CLOSED_AFTER_AT_LEAST) {
            problems.push(format!(
                "{mode:?}: one was closed after {fastest:?}, before any timeout"
            ));
        }
        // Two listeners, each with CROWD / MODES slots of this mode: each slot's connection
        // replaced at least once.
        let slots = 2 * CROWD / MODES.len();
        if closed.len() + open.len() < 2 * slots {
            problems.push(format!(
                "{mode:?}: {} connections for {slots} slots: closed ones were not replaced",
                closed.len() + open.len()
            ));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    let get = path.kubectl.run(&["get", "pods"]).await;
    assert!(get.success(), "kubectl after the attack: {}", get.stderr);
    path.shutdown().await;
}
