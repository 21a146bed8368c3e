//! The KMS listener's limits: a slow-loris crowd (HTTP/1.1 heads, HTTP/2 prefaces, idle h2c
//! connections), sustained for 30 s, is closed within the header timeout while the API keeps
//! answering; idle keep-alive and HTTP/2 connections and slowly sent bodies are cut too.

use std::time::{Duration, Instant};

use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Kms;
use crate::net::conn::HttpLimits;

/// The header timeout plus room for a loaded machine.
fn closed_within() -> Duration {
    HttpLimits::KMS.header_read_timeout + Duration::from_secs(6)
}

/// Writes `bytes` one a second (cycling) until the server closes the connection; returns how
/// long that took (`None`: still open at `give_up`).
async fn dribble(mut tcp: TcpStream, bytes: &[u8], give_up: Instant) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 512];
    for byte in bytes.iter().cycle() {
        if Instant::now() >= give_up {
            return None;
        }
        if tcp.write_all(&[*byte]).await.is_err() {
            return Some(started.elapsed());
        }
        let read = tokio::time::timeout(Duration::from_secs(1), tcp.read(&mut buf)).await;
        if let Ok(Ok(0) | Err(_)) = read {
            return Some(started.elapsed());
        }
    }
    None
}

/// An h2c connection that asks `/v1/healthz` once, unauthenticated, then idles; returns how long
/// after the answer the server closed it (`None`: still open at `give_up`).
async fn idle_http2(tcp: TcpStream, give_up: Instant) -> Option<Duration> {
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .ok()?;
    let connection = tokio::spawn(connection);
    let request = http::Request::get("http://kms/v1/healthz")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .ok()?;
    drop(sender.send_request(request).await.ok()?);
    let started = Instant::now();
    // However it ended (GOAWAY, reset), it ended.
    let _ended = tokio::time::timeout_at(give_up.into(), connection)
        .await
        .ok()?;
    Some(started.elapsed())
}

/// How one slow connection misbehaves.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Slow {
    /// An HTTP/1.1 head one byte a second.
    Head,
    /// The HTTP/2 connection preface one byte a second (before hyper knows the protocol).
    Preface,
    /// One request over h2c, then nothing.
    IdleHttp2,
}

const MODES: [Slow; 3] = [Slow::Head, Slow::Preface, Slow::IdleHttp2];
/// Slow connections at any time.
const CROWD: usize = 500;
/// The crowd is held at full strength this long (a closed connection is replaced by a new one
/// until then); then it leaves.
const SUSTAIN: Duration = Duration::from_secs(30);

/// One slow connection: when the server closed it, or its age when the crowd left with it open.
async fn slow_connection(
    addr: std::net::SocketAddr,
    mode: Slow,
    crowd_leaves: Instant,
) -> Result<Duration, Duration> {
    let opened = Instant::now();
    let give_up = crowd_leaves.min(opened + closed_within() + Duration::from_secs(4));
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let closed = match mode {
        Slow::Head => dribble(tcp, b"GET /v1/whoami HTTP/1.1\r\nHost: kms\r\n", give_up).await,
        Slow::Preface => dribble(tcp, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", give_up).await,
        Slow::IdleHttp2 => idle_http2(tcp, give_up).await,
    };
    closed.ok_or_else(|| opened.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_loris_crowd_is_closed_within_the_header_timeout_and_the_api_still_answers() {
    let kms = Kms::start().await;
    let addr = kms.addr;
    let started = Instant::now();
    let crowd_leaves = started + SUSTAIN;
    let mut crowd = tokio::task::JoinSet::new();
    for i in 0..CROWD {
        crowd.spawn(async move {
            let mode = MODES[i % MODES.len()];
            let mut outcomes = Vec::new();
            while Instant::now() < crowd_leaves {
                outcomes.push((mode, slow_connection(addr, mode, crowd_leaves).await));
            }
            outcomes
        });
    }
    // While the crowd holds on (first wave, second wave), the API answers.
    let admin = kms.admin.clone();
    for at in [2, 12, 25] {
        tokio::time::sleep_until((started + Duration::from_secs(at)).into()).await;
        kms.get("/v1/whoami", &admin).await.expect(StatusCode::OK);
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
    // Each connection was closed by its timeout (header, first request or idle: 15 s), not
    // refused at once nor kept past it; those open when the crowd left were younger.
    let mut problems = Vec::new();
    for mode in MODES {
        let of_mode = || {
            outcomes
                .iter()
                .filter(move |(m, _)| *m == mode)
                .map(|(_, o)| *o)
        };
        let closed: Vec<Duration> = of_mode().filter_map(Result::ok).collect();
        let open: Vec<Duration> = of_mode().filter_map(Result::err).collect();
        let fastest = closed.iter().min().copied();
        let slowest = closed.iter().max().copied().unwrap_or_default();
        let oldest_open = open.iter().max().copied().unwrap_or_default();
        eprintln!(
            "{mode:?}: {} closed after {fastest:?} to {slowest:?}; {} open when the crowd left \
             (the oldest {oldest_open:?})",
            closed.len(),
            open.len()
        );
        if slowest > closed_within() || oldest_open > closed_within() {
            problems.push(format!(
                "{mode:?}: closed after up to {slowest:?}, open after {oldest_open:?}"
            ));
        }
        let refused_early = HttpLimits::KMS.header_read_timeout - Duration::from_secs(3);
        if let Some(fastest) = fastest.filter(|f| *f < refused_early) {
            problems.push(format!(
                "{mode:?}: one was closed after {fastest:?}, before any timeout"
            ));
        }
        let slots = CROWD / MODES.len();
        if closed.len() + open.len() < 2 * slots {
            problems.push(format!(
                "{mode:?}: {} connections for {slots} slots: closed ones were not replaced",
                closed.len() + open.len()
            ));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    kms.get("/v1/whoami", &admin).await.expect(StatusCode::OK);
    kms.stop().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let kms = Kms::start().await;
    let mut tcp = TcpStream::connect(kms.addr).await.expect("connect");
    tcp.write_all(b"GET /v1/healthz HTTP/1.1\r\nHost: kms\r\n\r\n")
        .await
        .expect("write");
    let mut buf = vec![0u8; 4096];
    let n = tcp.read(&mut buf).await.expect("answer");
    assert!(n > 0);
    let started = Instant::now();
    // Then nothing: the server closes the idle connection after the header timeout.
    let mut rest = Vec::new();
    let read = tokio::time::timeout(closed_within(), tcp.read_to_end(&mut rest)).await;
    assert!(
        read.is_ok(),
        "idle connection still open after {:?}",
        started.elapsed()
    );
    kms.stop().await;
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed_after_its_request() {
    let kms = Kms::start().await;
    let tcp = TcpStream::connect(kms.addr).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .expect("h2c handshake");
    let connection = tokio::spawn(connection);
    let request = http::Request::get(format!("http://{}/v1/healthz", kms.addr))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .expect("request");
    let answer = sender.send_request(request).await.expect("answer");
    assert_eq!(answer.status(), StatusCode::OK);
    drop(answer);
    let started = Instant::now();
    // Then nothing: an unauthenticated peer must not keep one of the 4,096 slots.
    let closed = tokio::time::timeout(closed_within(), connection).await;
    assert!(
        closed.is_ok(),
        "idle HTTP/2 connection still open after {:?}",
        started.elapsed()
    );
    let idle = HttpLimits::KMS
        .idle_timeout
        .expect("KMS closes idle connections");
    assert!(
        started.elapsed() + Duration::from_secs(1) >= idle,
        "closed too early"
    );
    kms.stop().await;
}

#[tokio::test]
async fn a_slowly_sent_body_is_cut_with_408_within_the_deadline() {
    use crate::server::edge::body_deadline::BODY_READ_TIMEOUT;
    let kms = Kms::start().await;
    let mut tcp = TcpStream::connect(kms.addr).await.expect("connect");
    // Unauthenticated: the enrollment handler reads the body before it checks the token.
    tcp.write_all(
        b"POST /v1/gateways/enroll HTTP/1.1\r\nHost: kms\r\n\
          Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n",
    )
    .await
    .expect("head");
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = loop {
        assert!(
            started.elapsed() <= BODY_READ_TIMEOUT + Duration::from_secs(6),
            "still reading a 1 byte/s body after {:?}; got {:?}",
            started.elapsed(),
            String::from_utf8_lossy(&answer)
        );
        if tcp.write_all(b" ").await.is_err() {
            break started.elapsed();
        }
        match tokio::time::timeout(Duration::from_secs(1), tcp.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break started.elapsed(),
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    };
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        closed >= BODY_READ_TIMEOUT - Duration::from_secs(1),
        "cut after {closed:?}"
    );
    // A body sent at once is still read.
    let admin = kms.admin.clone();
    kms.get("/v1/whoami", &admin).await.expect(StatusCode::OK);
    kms.stop().await;
}

/// Log lines written through a test's own subscriber.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut lines = self.0.lock().unwrap_or_else(|p| p.into_inner());
        lines.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Past 4,096 open connections a new one is closed at once, and one source's refusals write one
/// WARN line a minute, not one each.
#[tokio::test] // One thread: the server's tasks log through this test's subscriber.
async fn connections_over_the_cap_are_closed_and_logged_once_per_source() {
    use crate::server::MAX_CONNECTIONS;
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let kms = Kms::start().await;
    let mut held = Vec::with_capacity(MAX_CONNECTIONS);
    for _ in 0..MAX_CONNECTIONS {
        held.push(TcpStream::connect(kms.addr).await.expect("connect"));
    }
    for _ in 0..20 {
        let mut over = TcpStream::connect(kms.addr).await.expect("connect");
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(Duration::from_secs(5), over.read(&mut buf)).await;
        assert!(
            matches!(read, Ok(Ok(0) | Err(_))),
            "a connection over the cap was kept: {read:?}"
        );
    }
    let bytes = captured.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let log = String::from_utf8_lossy(&bytes);
    let refusals: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("KMS API connection refused"))
        .collect();
    assert_eq!(refusals.len(), 1, "{refusals:#?}");
    assert!(
        refusals[0].contains("WARN") && refusals[0].contains("skipped=0"),
        "{refusals:#?}"
    );
    drop(held);
    kms.stop().await;
}
