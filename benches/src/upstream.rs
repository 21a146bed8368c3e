//! The stand-in API server: HTTPS (HTTP/2 and HTTP/1.1 through ALPN, like kube-apiserver),
//! a bearer token check, and precomputed bodies, so that it costs as little as possible and the
//! benchmarks measure what sits in front of it. The faithful double is in the tests crate.
//!
//! Routes (all need `Authorization: Bearer <token>`):
//! - `GET /api/v1/namespaces/default/pods`: the small list; with `watch=true`, a watch that
//!   stays silent until `POST /bench/fire` sends each open watch one event;
//! - `GET /api/v1/namespaces/default/configmaps`: the large list;
//! - `GET /bench/watchers`: `{"open": N}`, the watches held open right now;
//! - `POST /bench/fire`: `{"sent": N}`, after sending one event to every open watch.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

use crate::fixtures::{CONFIGMAPS_PATH, PODS_PATH};

/// Streams one HTTP/2 connection may carry: the watch benchmark holds 10,000 on one.
const MAX_STREAMS: u32 = 100_000;

/// What the stand-in serves.
#[derive(Debug)]
pub struct UpstreamConfig {
    /// The token clients must present.
    pub token: String,
    /// TLS settings (ALPN `h2`, `http/1.1`).
    pub tls: Arc<rustls::ServerConfig>,
    /// The small list.
    pub pods: Bytes,
    /// The large list.
    pub configmaps: Bytes,
    /// The event each watch receives when fired.
    pub event: Bytes,
}

type ServedBody = Either<Full<Bytes>, EventBody>;

struct State {
    bearer: HeaderValue,
    config: UpstreamConfig,
    watchers: Mutex<Vec<mpsc::Sender<Bytes>>>,
}

/// Serves HTTPS on `listener` until `shutdown` resolves.
pub async fn serve<F>(
    listener: TcpListener,
    config: UpstreamConfig,
    shutdown: F,
) -> anyhow::Result<()>
where
    F: Future<Output = ()>,
{
    let state = Arc::new(State {
        bearer: HeaderValue::try_from(format!("Bearer {}", config.token))?,
        watchers: Mutex::default(),
        config,
    });
    let acceptor = TlsAcceptor::from(state.config.tls.clone());
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    tokio::spawn(serve_connection(acceptor.clone(), tcp, state.clone()));
                }
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    eprintln!("upstream: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            () = &mut shutdown => return Ok(()),
        }
    }
}

async fn serve_connection(acceptor: TlsAcceptor, tcp: TcpStream, state: Arc<State>) {
    let _ = tcp.set_nodelay(true);
    let Ok(tls) = acceptor.accept(tcp).await else {
        return;
    };
    let service = service_fn(move |request| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(route(&state, &request)) }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http2()
        .max_concurrent_streams(MAX_STREAMS)
        .adaptive_window(true);
    // Connection errors (a client that went away) end only that connection.
    let _ = builder.serve_connection(TokioIo::new(tls), service).await;
}

fn route(state: &State, request: &Request<Incoming>) -> Response<ServedBody> {
    if request.headers().get(header::AUTHORIZATION) != Some(&state.bearer) {
        return status(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    let watch = request
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
    match (request.method(), request.uri().path()) {
        (&Method::GET, PODS_PATH) if watch => open_watch(state),
        (&Method::GET, PODS_PATH) => json(state.config.pods.clone()),
        (&Method::GET, CONFIGMAPS_PATH) => json(state.config.configmaps.clone()),
        (&Method::GET, "/bench/watchers") => {
            let mut watchers = lock(&state.watchers);
            watchers.retain(|w| !w.is_closed());
            json(Bytes::from(format!("{{\"open\":{}}}", watchers.len())))
        }
        (&Method::POST, "/bench/fire") => {
            let mut watchers = lock(&state.watchers);
            watchers.retain(|w| !w.is_closed());
            let event = &state.config.event;
            let sent = watchers
                .iter()
                .filter(|w| w.try_send(event.clone()).is_ok())
                .count();
            json(Bytes::from(format!("{{\"sent\":{sent}}}")))
        }
        _ => status(StatusCode::NOT_FOUND, "NotFound"),
    }
}

fn open_watch(state: &State) -> Response<ServedBody> {
    // One slot: the benchmark sends each watch a single event.
    let (events, receiver) = mpsc::channel(1);
    lock(&state.watchers).push(events);
    let mut response = Response::new(Either::Right(EventBody { events: receiver }));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn json(body: Bytes) -> Response<ServedBody> {
    let mut response = Response::new(Either::Left(Full::new(body)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn status(code: StatusCode, reason: &str) -> Response<ServedBody> {
    let body = format!(
        r#"{{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"{reason}","code":{}}}"#,
        code.as_u16()
    );
    let mut response = json(Bytes::from(body));
    *response.status_mut() = code;
    response
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// A watch body: whatever the registry sends, for as long as the client keeps it open.
#[derive(Debug)]
pub struct EventBody {
    events: mpsc::Receiver<Bytes>,
}

impl Body for EventBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.events
            .poll_recv(cx)
            .map(|event| event.map(|bytes| Ok(Frame::data(bytes))))
    }
}
