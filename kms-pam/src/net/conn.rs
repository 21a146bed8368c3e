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
    /// A connection with no request in flight (none being read, answered or streamed) for this
    /// long is shut down gracefully (HTTP/2 `GOAWAY`). HTTP/1.1 needs no such bound: hyper's
    /// header timeout already runs while it waits for the next request. `None` keeps idle
    /// HTTP/2 connections: the gateway's session tunnel, which is idle between kubectl commands
    /// and authenticated, must outlive those pauses.
    pub(crate) idle_timeout: Option<Duration>,
}

impl HttpLimits {
    /// kubectl's side (the loopback proxy): a request head of at most 512 KiB, in 10 s.
    pub(crate) const LOCAL: Self = Self {
        header_read_timeout: Duration::from_secs(10),
        max_header_bytes: 512 * 1024,
        idle_timeout: Some(Duration::from_secs(10)),
    };
    /// The gateway's tunnel side: more than the loopback proxy lets through, so a request it
    /// accepted is never refused mid-path.
    pub(crate) const TUNNEL: Self = Self {
        header_read_timeout: Duration::from_secs(10),
        max_header_bytes: crate::net::http2::MAX_HEADER_LIST_SIZE as usize,
        idle_timeout: None,
    };
    /// The gateway's metrics endpoint: tiny requests.
    pub(crate) const METRICS: Self = Self {
        header_read_timeout: Duration::from_secs(10),
        max_header_bytes: 16 * 1024,
        idle_timeout: Some(Duration::from_secs(10)),
    };
    /// The KMS API: small request heads; the header timeout also closes a keep-alive connection
    /// that stays idle that long (hyper starts it whenever it waits for a request head).
    #[cfg(feature = "server")]
    pub(crate) const KMS: Self = Self {
        header_read_timeout: Duration::from_secs(15),
        max_header_bytes: 64 * 1024,
        idle_timeout: Some(Duration::from_secs(15)),
    };
}

/// Serves one connection (HTTP/1.1 with upgrades, or HTTP/2 with the path's flow-control
/// windows) until it closes or `stop` resolves; then gives it [`DRAIN`] to finish and drops it.
/// A connection whose first request head has not arrived within the header timeout is closed,
/// and an HTTP/2 connection idle for the idle timeout (if the listener has one) is shut down.
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
    let activity = Arc::new(Activity::new(limits.idle_timeout.is_some()));
    let service = Tracked {
        inner: service,
        activity: activity.clone(),
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
        .initial_stream_window_size(crate::net::http2::STREAM_WINDOW)
        .initial_connection_window_size(crate::net::http2::CONNECTION_WINDOW)
        .max_header_list_size(header_bytes)
        .max_concurrent_streams(crate::net::http2::MAX_STREAMS);
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(connection);
    // hyper's header timeout starts once it knows the protocol; a client that dribbles the first
    // bytes would hold the connection meanwhile, so the first request has a deadline of its own.
    let first_deadline = tokio::time::sleep(limits.header_read_timeout);
    tokio::pin!(first_deadline);
    // hyper closes an idle HTTP/1.1 connection, never an HTTP/2 one whose peer answers pings.
    let idle_check = tokio::time::sleep(limits.idle_timeout.unwrap_or(Duration::MAX / 4));
    tokio::pin!(idle_check);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended");
                }
                return;
            }
            () = &mut first_deadline, if !activity.seen_request() => {
                // The guard was read when this round started; a request may have come since.
                if !activity.seen_request() {
                    tracing::debug!("no request within the header timeout; connection closed");
                    return;
                }
            }
            () = &mut idle_check, if limits.idle_timeout.is_some() => {
                let idle_timeout = limits.idle_timeout.unwrap_or(Duration::MAX / 4);
                match activity.idle_since() {
                    Some(since) if activity.is_http2() && since.elapsed() >= idle_timeout => {
                        tracing::debug!("HTTP/2 connection idle for the idle timeout; shut down");
                        break;
                    }
                    Some(since) => idle_check.as_mut().reset(since + idle_timeout),
                    None => idle_check.as_mut().reset(tokio::time::Instant::now() + idle_timeout),
                }
            }
            () = &mut stop => break,
        }
    }
    connection.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(DRAIN, connection).await;
}

/// What a connection is doing: whether a request came, its protocol, how many requests are in
/// flight (from their head until their response body is done or dropped) and since when none is.
struct Activity {
    seen_request: AtomicBool,
    http2: AtomicBool,
    /// Whether requests are counted at all: only a listener with an idle timeout needs it (the
    /// gateway's tunnel, on every proxied request, does not pay for it).
    counting: bool,
    in_flight: std::sync::Mutex<(usize, tokio::time::Instant)>,
}

impl Activity {
    fn new(counting: bool) -> Self {
        Self {
            seen_request: AtomicBool::new(false),
            http2: AtomicBool::new(false),
            counting,
            in_flight: std::sync::Mutex::new((0, tokio::time::Instant::now())),
        }
    }

    fn seen_request(&self) -> bool {
        self.seen_request.load(Ordering::Relaxed)
    }

    fn is_http2(&self) -> bool {
        self.http2.load(Ordering::Relaxed)
    }

    /// `Some(when the last request ended)` if none is in flight.
    fn idle_since(&self) -> Option<tokio::time::Instant> {
        let in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        (in_flight.0 == 0).then_some(in_flight.1)
    }

    /// Notes a request head; counts the request in flight if this connection counts them.
    fn started(self: &Arc<Self>, http2: bool) -> Option<InFlight> {
        self.seen_request.store(true, Ordering::Relaxed);
        if !self.counting {
            return None;
        }
        if http2 {
            self.http2.store(true, Ordering::Relaxed);
        }
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner()).0 += 1;
        Some(InFlight(self.clone()))
    }
}

/// One request in flight; dropped with its response body (or its future, if it never answered).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut in_flight = self.0.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        in_flight.0 = in_flight.0.saturating_sub(1);
        in_flight.1 = tokio::time::Instant::now();
    }
}

/// Counts a connection's requests in flight for [`Activity`].
struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S, R, B> hyper::service::Service<http::Request<R>> for Tracked<S>
where
    S: hyper::service::Service<http::Request<R>, Response = http::Response<B>>,
{
    type Response = http::Response<TrackedBody<B>>;
    type Error = S::Error;
    type Future = TrackedFuture<S::Future>;

    fn call(&self, request: http::Request<R>) -> Self::Future {
        let in_flight = self
            .activity
            .started(request.version() == http::Version::HTTP_2);
        TrackedFuture {
            inner: self.inner.call(request),
            in_flight,
        }
    }
}

pin_project_lite::pin_project! {
    /// A response on its way, its request counted in flight.
    struct TrackedFuture<F> {
        #[pin]
        inner: F,
        in_flight: Option<InFlight>,
    }
}

impl<F, B, E> Future for TrackedFuture<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
{
    type Output = Result<http::Response<TrackedBody<B>>, E>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = self.project();
        let response = std::task::ready!(this.inner.poll(cx))?;
        let in_flight = this.in_flight.take();
        std::task::Poll::Ready(Ok(response.map(|body| TrackedBody {
            inner: body,
            _in_flight: in_flight,
        })))
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its request counted in flight until it is done or dropped.
    struct TrackedBody<B> {
        #[pin]
        inner: B,
        _in_flight: Option<InFlight>,
    }
}

impl<B: http_body::Body> http_body::Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
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
#[path = "conn_tests.rs"]
mod tests;
