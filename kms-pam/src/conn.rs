//! Serving plumbing shared by every listener of the crate, one copy each: accepting with backoff
//! on errors, and serving one HTTP connection (HTTP/1.1 with upgrades, or HTTP/2) with a drain.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

/// How long open requests get to finish when a connection is asked to stop, before it is dropped.
pub(crate) const DRAIN: Duration = Duration::from_millis(500);

/// Pause after an accept error that is not about one connection (e.g. out of file descriptors),
/// so the loop does not spin while the condition lasts; doubled up to [`MAX_ACCEPT_BACKOFF`].
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// Accepts the next connection, retrying errors: errors about one vanished connection at once,
/// others (out of file descriptors) after a growing pause, logged once per streak. `TCP_NODELAY`
/// is set on what it returns.
pub(crate) async fn accept(listener: &TcpListener, what: &str) -> (TcpStream, SocketAddr) {
    let mut backoff = ACCEPT_BACKOFF;
    loop {
        match listener.accept().await {
            Ok((tcp, peer)) => {
                // A failure only costs latency, never correctness.
                let _ = tcp.set_nodelay(true);
                return (tcp, peer);
            }
            Err(e) if is_per_connection(&e) => {}
            Err(e) => {
                if backoff == ACCEPT_BACKOFF {
                    tracing::warn!(error = %e, listener = what, "cannot accept; retrying");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
            }
        }
    }
}

/// Errors about one connection that vanished before it was accepted; the next may be fine.
pub(crate) fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

/// The limits of one listener's HTTP connections.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HttpLimits {
    /// The request head (line and headers) must arrive within this; a connection whose first
    /// request has not arrived by then is closed (slow-loris).
    pub(crate) header_read_timeout: Duration,
    /// The largest request head accepted, in bytes (HTTP/1.1 read buffer, HTTP/2 header list).
    pub(crate) max_header_bytes: usize,
}

impl HttpLimits {
    /// kubectl's side (the loopback proxy): a request head of at most 512 KiB, in 10 s.
    pub(crate) const LOCAL: Self = Self {
        header_read_timeout: Duration::from_secs(10),
        max_header_bytes: 512 * 1024,
    };
    /// The gateway's tunnel side: more than the loopback proxy lets through, so a request it
    /// accepted is never refused mid-path.
    pub(crate) const TUNNEL: Self = Self {
        header_read_timeout: Duration::from_secs(10),
        max_header_bytes: crate::proxy::http2::MAX_HEADER_LIST_SIZE as usize,
    };
    /// The gateway's metrics endpoint: tiny requests.
    pub(crate) const METRICS: Self = Self {
        header_read_timeout: Duration::from_secs(10),
        max_header_bytes: 16 * 1024,
    };
    /// The KMS API: small request heads; the header timeout also closes a keep-alive connection
    /// that stays idle that long (hyper starts it whenever it waits for a request head).
    #[cfg(feature = "server")]
    pub(crate) const KMS: Self = Self {
        header_read_timeout: Duration::from_secs(15),
        max_header_bytes: 64 * 1024,
    };
}

/// Serves one connection (HTTP/1.1 with upgrades, or HTTP/2 with the path's flow-control
/// windows) until it closes or `stop` resolves; then gives it [`DRAIN`] to finish and drops it.
/// A connection whose first request head has not arrived within the header timeout is closed.
pub(crate) async fn serve_http<I, S, B, F>(io: I, service: S, limits: HttpLimits, stop: F)
where
    I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    S: hyper::service::Service<http::Request<hyper::body::Incoming>, Response = http::Response<B>>
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    F: Future<Output = ()>,
{
    let first_request = Arc::new(AtomicBool::new(false));
    let service = FirstRequest {
        inner: service,
        seen: first_request.clone(),
    };
    let header_bytes = u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .initial_stream_window_size(crate::proxy::http2::STREAM_WINDOW)
        .initial_connection_window_size(crate::proxy::http2::CONNECTION_WINDOW)
        .max_header_list_size(header_bytes)
        .max_concurrent_streams(crate::proxy::http2::MAX_STREAMS);
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(connection);
    // hyper's header timeout starts once it knows the protocol; a client that dribbles the first
    // bytes would hold the connection meanwhile, so the first request has a deadline of its own.
    let first_deadline = tokio::time::sleep(limits.header_read_timeout);
    tokio::pin!(first_deadline);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended");
                }
                return;
            }
            () = &mut first_deadline, if !first_request.load(Ordering::Relaxed) => {
                // The guard was read when this round started; a request may have come since.
                if !first_request.load(Ordering::Relaxed) {
                    tracing::debug!("no request within the header timeout; connection closed");
                    return;
                }
            }
            () = &mut stop => break,
        }
    }
    connection.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(DRAIN, connection).await;
}

/// Marks that a connection's first request head arrived.
struct FirstRequest<S> {
    inner: S,
    seen: Arc<AtomicBool>,
}

impl<S, R> hyper::service::Service<R> for FirstRequest<S>
where
    S: hyper::service::Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn call(&self, request: R) -> Self::Future {
        self.seen.store(true, Ordering::Relaxed);
        self.inner.call(request)
    }
}

/// Allows one log line per source address and period, then counts what it suppressed: a peer
/// failing thousands of handshakes writes a line a minute, not a line each.
pub(crate) struct LogLimiter {
    period: Duration,
    seen:
        std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, (tokio::time::Instant, u64)>>,
}

impl LogLimiter {
    /// Tracks at most this many sources; past it, the map is cleared (a flood from many sources
    /// costs a few extra lines, never memory).
    const MAX_SOURCES: usize = 4096;

    pub(crate) fn new(period: Duration) -> Self {
        Self {
            period,
            seen: std::sync::Mutex::default(),
        }
    }

    /// `Some(suppressed since the last line)` when a line for `source` may be written now.
    pub(crate) fn allow(&self, source: std::net::IpAddr) -> Option<u64> {
        let now = tokio::time::Instant::now();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= Self::MAX_SOURCES && !seen.contains_key(&source) {
            seen.clear();
        }
        match seen.get_mut(&source) {
            Some((last, suppressed)) if now.duration_since(*last) < self.period => {
                *suppressed += 1;
                None
            }
            Some((last, suppressed)) => {
                *last = now;
                Some(std::mem::take(suppressed))
            }
            None => {
                seen.insert(source, (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
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
}
