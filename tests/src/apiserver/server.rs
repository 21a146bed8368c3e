//! Accepting TLS connections and serving HTTP/1.1 (with upgrades) and h2 on them.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use super::{router, State};

/// A client that has not finished its TLS handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts until the double is cancelled; each connection runs as a tracked task.
pub(crate) async fn accept_loop(state: Arc<State>, listener: TcpListener, tls: Arc<ServerConfig>) {
    let acceptor = TlsAcceptor::from(tls);
    loop {
        let accepted = tokio::select! {
            () = state.cancel.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((tcp, _peer)) => {
                let _ = tcp.set_nodelay(true);
                state
                    .tasks
                    .spawn(serve_connection(state.clone(), acceptor.clone(), tcp));
            }
            Err(error) => {
                // Typically EMFILE; back off instead of spinning.
                tracing::warn!(%error, "api server double: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve_connection(state: Arc<State>, acceptor: TlsAcceptor, tcp: TcpStream) {
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => {
            state
                .connections
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tls
        }
        Ok(Err(error)) => {
            tracing::debug!(%error, "api server double: TLS handshake failed");
            return;
        }
        Err(_) => return,
    };
    const MAX_HEADER_BYTES: usize = 1 << 20;
    let service_state = state.clone();
    let service = service_fn(move |request| {
        let state = service_state.clone();
        async move { Ok::<_, Infallible>(router::handle(state, request).await) }
    });
    // As kube-apiserver (Go's net/http): request heads up to 1 MiB (http.DefaultMaxHeaderBytes),
    // on HTTP/1.1 and HTTP/2 alike; hyper's own HTTP/2 default is 16 KiB.
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().max_buf_size(MAX_HEADER_BYTES);
    builder
        .http2()
        .max_header_list_size(MAX_HEADER_BYTES as u32);
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
    tokio::select! {
        () = state.cancel.cancelled() => {}
        result = connection => {
            if let Err(error) = result {
                tracing::debug!(%error, "api server double: connection ended with an error");
            }
        }
    }
}
