//! `conn` tests: accepting, the HTTP/2 idle timeout (paused clock, in-memory pipes) and the log
//! limiter.

use super::*;

#[test]
fn only_vanished_connections_are_per_connection() {
    for kind in [
        io::ErrorKind::ConnectionAborted,
        io::ErrorKind::ConnectionReset,
    ] {
        assert!(is_per_connection(&io::Error::from(kind)));
    }
    let emfile = io::Error::from_raw_os_error(24);
    assert!(!is_per_connection(&emfile), "EMFILE must back off");
}

#[tokio::test]
async fn accept_sets_nodelay() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let client = tokio::spawn(TcpStream::connect(addr));
    let (tcp, _) = accept(&listener, "test").await;
    assert!(tcp.nodelay().expect("nodelay"));
    client.await.expect("join").expect("connect");
}

/// Serves `limits` over an in-memory pipe to an HTTP/2 client; the service answers `/` at
/// once and `/watch` with a body that never ends. Returns the client and the connection task.
async fn h2_connection(
    limits: HttpLimits,
) -> (
    hyper::client::conn::http2::SendRequest<http_body_util::Empty<bytes::Bytes>>,
    tokio::task::JoinHandle<()>,
) {
    use http_body_util::BodyExt as _;
    type Body = http_body_util::combinators::BoxBody<bytes::Bytes, std::convert::Infallible>;
    let (client, server) = tokio::io::duplex(64 * 1024);
    let service = hyper::service::service_fn(|request: http::Request<_>| async move {
        let body: Body = if request.uri().path() == "/watch" {
            http_body_util::StreamBody::new(futures_util::stream::pending::<
                Result<http_body::Frame<bytes::Bytes>, std::convert::Infallible>,
            >())
            .boxed()
        } else {
            http_body_util::Full::new(bytes::Bytes::from_static(b"ok")).boxed()
        };
        Ok::<_, std::convert::Infallible>(http::Response::new(body))
    });
    let served = tokio::spawn(serve_http(server, service, limits, std::future::pending()));
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(client))
            .await
            .expect("h2 handshake");
    tokio::spawn(connection);
    (sender, served)
}

async fn get(
    sender: &mut hyper::client::conn::http2::SendRequest<http_body_util::Empty<bytes::Bytes>>,
    path: &str,
) -> http::Response<hyper::body::Incoming> {
    let request = http::Request::get(format!("http://x{path}"))
        .body(http_body_util::Empty::new())
        .expect("request");
    sender.send_request(request).await.expect("answer")
}

#[tokio::test(start_paused = true)]
async fn an_idle_http2_connection_is_shut_down_after_the_idle_timeout() {
    for limits in [HttpLimits::LOCAL, HttpLimits::METRICS] {
        let idle = limits.idle_timeout.expect("closes idle connections");
        let (mut sender, served) = h2_connection(limits).await;
        let answer = get(&mut sender, "/").await;
        assert_eq!(answer.status(), http::StatusCode::OK);
        drop(answer);
        let started = tokio::time::Instant::now();
        tokio::time::timeout(idle + DRAIN + Duration::from_secs(1), served)
            .await
            .expect("an idle HTTP/2 connection was kept open")
            .expect("join");
        assert!(started.elapsed() >= idle, "closed before the idle timeout");
    }
}

#[tokio::test(start_paused = true)]
async fn an_http2_connection_with_an_open_stream_or_without_an_idle_timeout_is_kept() {
    let (mut sender, served) = h2_connection(HttpLimits::LOCAL).await;
    let watch = get(&mut sender, "/watch").await;
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert!(
        !served.is_finished(),
        "a connection streaming a watch was shut down"
    );
    drop(watch);
    tokio::time::timeout(Duration::from_secs(15), served)
        .await
        .expect("closed once the watch ended and the connection idled")
        .expect("join");

    let (mut sender, served) = h2_connection(HttpLimits::TUNNEL).await;
    drop(get(&mut sender, "/").await);
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert!(
        !served.is_finished(),
        "the session tunnel was closed while idle"
    );
    assert_eq!(get(&mut sender, "/").await.status(), http::StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn the_log_limiter_writes_one_line_per_source_and_period() {
    let limiter = LogLimiter::new(Duration::from_secs(60));
    let (a, b) = (
        "10.0.0.1".parse().expect("ip"),
        "10.0.0.2".parse().expect("ip"),
    );
    assert_eq!(limiter.allow(a), Some(0));
    for _ in 0..1500 {
        assert_eq!(limiter.allow(a), None);
    }
    assert_eq!(
        limiter.allow(b),
        Some(0),
        "another source has its own budget"
    );
    tokio::time::advance(Duration::from_secs(61)).await;
    assert_eq!(
        limiter.allow(a),
        Some(1500),
        "the next line says how many were skipped"
    );
}
