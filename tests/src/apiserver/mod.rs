//! An in-process Kubernetes API server double that the real `kubectl` accepts.
//!
//! It serves HTTPS (h2 and HTTP/1.1) on `127.0.0.1:0` with a throwaway CA, authenticates a bearer
//! token, and answers like kube-apiserver 1.32: discovery (legacy and aggregated), Table
//! responses, protobuf create bodies, watches, `logs -f`, and exec/attach over WebSocket
//! (`v5.channel.k8s.io`/`v4.channel.k8s.io`). Every request is recorded for assertions.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use kms_pam_tests::apiserver::{ApiServerDouble, DoubleConfig};
//! let double = ApiServerDouble::start(DoubleConfig::default()).await?;
//! let kubectl = kms_pam_tests::kubectl::Kubectl::new(&double.url(), double.ca_pem(), double.token())?;
//! double.shutdown().await;
//! # Ok(()) }
//! ```

mod catalog;
mod client;
mod clock;
mod commands;
mod discovery;
mod exec;
mod logs;
mod objects;
mod protobuf;
mod record;
mod request;
mod response;
mod router;
mod scale;
mod seed;
mod selector;
mod server;
mod store;
mod table;
mod tls;
mod watch;
mod writes;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use client::{open_websocket, send_raw, TlsWebSocket};
pub use record::RecordedRequest;
pub use seed::nginx_pod_names;

use record::{Recorder, StreamCounter};
use store::Store;

/// How the double behaves; [`Default`] suits kubectl end-to-end tests.
#[derive(Debug, Clone)]
pub struct DoubleConfig {
    /// The bearer token accepted on every endpoint.
    pub token: String,
    /// Size of the JSON of ConfigMap `default/big` (0 leaves it out).
    pub big_object_bytes: usize,
    /// Period of synthetic MODIFIED events on pod watches (None: only [`ApiServerDouble::emit_pod_event`]).
    pub watch_tick: Option<Duration>,
    /// Period of new lines on `logs -f`.
    pub log_interval: Duration,
    /// Answer aggregated discovery (`apidiscovery.k8s.io/v2`) when asked, as 1.32 servers do;
    /// false forces clients onto the legacy per-group-version documents.
    pub aggregated_discovery: bool,
    /// Answer every exec and attach upgrade with this `Sec-WebSocket-Protocol`, whatever was
    /// offered (an empty one: no subprotocol at all): an API server that breaks the handshake.
    /// None picks from the offer.
    pub exec_subprotocol_answer: Option<String>,
}

impl Default for DoubleConfig {
    fn default() -> Self {
        Self {
            token: format!("double-{}", uuid::Uuid::new_v4().simple()),
            big_object_bytes: 20 * 1024 * 1024,
            watch_tick: Some(Duration::from_millis(500)),
            log_interval: Duration::from_millis(100),
            aggregated_discovery: true,
            exec_subprotocol_answer: None,
        }
    }
}

/// Everything the request handlers share.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) config: DoubleConfig,
    pub(crate) store: Store,
    pub(crate) recorder: Recorder,
    /// Open watch, log-follow, exec and attach streams.
    pub(crate) streams: StreamCounter,
    /// Open pod watches, so the ticker only runs while someone listens.
    pub(crate) pod_watchers: StreamCounter,
    pub(crate) cancel: CancellationToken,
    pub(crate) tasks: TaskTracker,
    pub(crate) server_address: String,
    /// TLS connections accepted so far (handshake completed).
    pub(crate) connections: std::sync::atomic::AtomicUsize,
}

/// A running double; dropping it stops serving (prefer [`ApiServerDouble::shutdown`]).
#[derive(Debug)]
pub struct ApiServerDouble {
    addr: SocketAddr,
    ca_pem: String,
    state: Arc<State>,
}

impl ApiServerDouble {
    /// Binds `127.0.0.1:0` and serves HTTPS with a fresh CA whose server certificate is valid for
    /// IP `127.0.0.1` and DNS `localhost`.
    pub async fn start(config: DoubleConfig) -> std::io::Result<Self> {
        let tls = tls::generate()?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let store = Store::new();
        seed::load(
            &store,
            &tls.ca_pem,
            config.big_object_bytes,
            SystemTime::now(),
        );
        let state = Arc::new(State {
            config,
            store,
            recorder: Recorder::default(),
            streams: StreamCounter::default(),
            pod_watchers: StreamCounter::default(),
            cancel: CancellationToken::new(),
            tasks: TaskTracker::new(),
            server_address: addr.to_string(),
            connections: Default::default(),
        });
        state.tasks.spawn(server::accept_loop(
            state.clone(),
            listener,
            tls.server_config,
        ));
        if let Some(period) = state.config.watch_tick {
            state.tasks.spawn(watch::tick_pods(state.clone(), period));
        }
        Ok(Self {
            addr,
            ca_pem: tls.ca_pem,
            state,
        })
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// PEM of the CA that signed the server certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The bearer token the double accepts.
    pub fn token(&self) -> &str {
        &self.state.config.token
    }

    /// Every request received so far, in arrival order (including unauthorized ones).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.recorder.snapshot()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.state.recorder.clear();
    }

    /// Bumps pod `namespace/name` so every open pod watch gets a MODIFIED event; does nothing
    /// for a pod that does not exist.
    pub fn emit_pod_event(&self, namespace: &str, name: &str) {
        watch::touch_pod(&self.state, namespace, name);
    }

    /// TLS connections accepted so far: how a test sees that a client reuses connections.
    pub fn tls_connections(&self) -> usize {
        self.state
            .connections
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Watch, log-follow, exec and attach streams open right now.
    pub fn open_streams(&self) -> usize {
        self.state.streams.current()
    }

    /// Stops accepting, cuts every connection and stream, and waits (up to 5 s) for them to end.
    pub async fn shutdown(self) {
        self.state.cancel.cancel();
        self.state.tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.state.tasks.wait()).await;
    }
}

impl Drop for ApiServerDouble {
    fn drop(&mut self) {
        self.state.cancel.cancel();
    }
}
