//! The KMS listener's limits: a slow-loris crowd is closed within the header timeout while the
//! API keeps answering; an idle keep-alive connection is closed too.

use std::time::{Duration, Instant};

use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Kms;
use crate::conn::HttpLimits;

/// The header timeout plus room for a loaded machine.
fn closed_within() -> Duration {
    HttpLimits::KMS.header_read_timeout + Duration::from_secs(6)
}

/// Writes one byte of a request head a second until the server closes the connection; returns
/// how long that took (`None`: still open after `give_up`).
async fn dribble(mut tcp: TcpStream, give_up: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 512];
    for byte in b"GET /v1/whoami HTTP/1.1\r\nHost: kms\r\n".iter().cycle() {
        if started.elapsed() > give_up {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_loris_crowd_is_closed_within_the_header_timeout_and_the_api_still_answers() {
    let kms = Kms::start().await;
    let addr = kms.addr;
    let give_up = closed_within() + Duration::from_secs(4);
    let mut crowd = tokio::task::JoinSet::new();
    for _ in 0..500 {
        crowd.spawn(async move {
            let tcp = TcpStream::connect(addr).await.expect("connect");
            dribble(tcp, give_up).await
        });
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let admin = kms.admin.clone();
    kms.get("/v1/whoami", &admin).await.expect(StatusCode::OK);

    let mut closed = Vec::new();
    while let Some(outcome) = crowd.join_next().await {
        closed.push(outcome.expect("join"));
    }
    let open = closed.iter().filter(|c| c.is_none()).count();
    assert_eq!(open, 0, "{open} slow connections were never closed");
    let slowest = closed.iter().flatten().max().copied().unwrap_or_default();
    assert!(
        slowest <= closed_within(),
        "slowest close after {slowest:?}"
    );
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
    use crate::server::body_deadline::BODY_READ_TIMEOUT;
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
