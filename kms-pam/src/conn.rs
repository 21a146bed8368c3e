//! Serving plumbing shared by every listener of the crate, one copy each: accepting with backoff
//! on errors, and serving one HTTP connection (HTTP/1.1 with upgrades, or HTTP/2) with a drain.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

use crate::proxy::ProxyBody;

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

/// Serves one connection (HTTP/1.1 with upgrades, or HTTP/2 with the path's flow-control
/// windows) until it closes or `stop` resolves; then gives it [`DRAIN`] to finish and drops it.
pub(crate) async fn serve_http<I, S, F>(io: I, service: S, stop: F)
where
    I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    S: hyper::service::Service<
            http::Request<hyper::body::Incoming>,
            Response = http::Response<ProxyBody>,
            Error = Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
    F: Future<Output = ()>,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http2()
        .timer(TokioTimer::new())
        .initial_stream_window_size(crate::proxy::http2::STREAM_WINDOW)
        .initial_connection_window_size(crate::proxy::http2::CONNECTION_WINDOW)
        .max_concurrent_streams(crate::proxy::http2::MAX_STREAMS);
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended");
            }
            return;
        }
        () = stop => {}
    }
    connection.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(DRAIN, connection).await;
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
}
