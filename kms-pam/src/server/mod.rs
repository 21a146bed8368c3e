//! The KMS control plane (`kms-pam server`, feature `server`): the HTTP API of docs/api.md
//! ([`serve`], [`Server`]) over its storage (a private `store` module: the `Store` trait and its
//! SQLite and PostgreSQL engines; [`migrate_urls`] copies one into the other). Its JSON shapes are
//! [`kms::api`](crate::kms::api), which the client shares.
//!
//! Starting is two steps so the CLI can tell the operator where the admin token is before it
//! serves:
//!
//! ```no_run
//! # async fn run() -> Result<(), kms_pam::server::ServerError> {
//! use kms_pam::server::{Server, ServerConfig};
//!
//! let server = Server::open(ServerConfig::new("/var/lib/kms-pam")).await?;
//! if server.admin_created() {
//!     println!("admin token written to {}", server.admin_token_path().display());
//! }
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await.map_err(
//!     kms_pam::server::ServerError::Serve)?;
//! server.serve(listener, async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```
//!
//! or in one call, [`serve`].
//!
//! Inside, the control plane stands in floors (docs/architecture.md, "The control plane in
//! layers"): the HTTP edge (`edge/`: shared state, errors, who is calling and their rights, the
//! refusal middleware, body deadline, validation, views), the session lifecycle (`lifecycle/`:
//! ending, sealing, visibility, the reaper, the change feed, bootstrap; no HTTP types), the API
//! handlers one file per docs/api.md area (`api/`), the web console (`console/`), and on top the
//! route table (`router.rs`) and this file, which starts and serves it all. The store
//! (`store/`) is the ground floor.

mod api;
mod config;
mod console;
mod edge;
mod lifecycle;
mod router;
mod sso;
pub(crate) mod store;
mod tls;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use self::config::{
    ServerConfig, ServerError, ServerTls, StoreFailure, TlsFileProblem, DEFAULT_ABANDON_AFTER,
    DEFAULT_TLS_RELOAD_CHECK,
};
use self::edge::body_deadline;
use self::edge::failure_budget::FailureBudget;
use self::edge::feed::ChangeFeed;
use self::edge::metrics::KmsMetrics;
use self::edge::state::{now, AppState};
use self::lifecycle::{bootstrap, feed, reaper};
pub use self::store::migrate::{migrate_urls, MigrationReport};

/// A server whose storage is ready; [`Server::serve`] runs it.
pub struct Server {
    state: AppState,
    admin_token_path: PathBuf,
    admin_created: bool,
    /// The HTTPS certificate, when KMS serves HTTPS itself.
    tls: Option<Arc<tls::ReloadingCert>>,
}

impl Server {
    /// Prepares storage: data directory, database and migrations, root key, KMS CA, project
    /// `default`, and on the first start the user `admin` with its token file. Later starts
    /// reuse all of it. After an outage in which no client could poll (no heartbeat for the
    /// abandon window), the sessions still held when it began get a fresh heartbeat, so the time
    /// KMS was away does not count against their clients; a restart while clients were polling
    /// (a quick one, or one replica among others) changes nothing.
    pub async fn open(config: ServerConfig) -> Result<Self, ServerError> {
        // The certificate first: a broken pair is told before anything is created.
        let tls = config
            .tls
            .as_ref()
            .map(tls::ReloadingCert::load)
            .transpose()?
            .map(Arc::new);
        let prepared = bootstrap::prepare(&config).await?;
        // Sessions stored before the command search's lines (store migration 0910) get theirs.
        let indexed = crate::server::lifecycle::commands::backfill(&*prepared.store).await?;
        if indexed > 0 {
            tracing::info!(
                sessions = indexed,
                "indexed the commands of older sessions for search"
            );
        }
        let seq = prepared.store.latest_seq().await?;
        let graced = prepared
            .store
            .grace_after_outage(now(), config.abandon_after)
            .await?;
        if graced > 0 {
            tracing::info!(
                sessions = graced,
                "no client could reach KMS for the abandon window; active sessions held before \
                 the outage get a fresh heartbeat"
            );
        }
        let state = AppState {
            store: prepared.store,
            ca: Arc::new(prepared.ca),
            default_project: Arc::new(prepared.project),
            feed: ChangeFeed::new(seq),
            shutdown: CancellationToken::new(),
            abandon_after: config.abandon_after,
            metrics: Arc::new(KmsMetrics::new()),
            failures: Arc::new(FailureBudget::default()),
            audit_key: Arc::new(prepared.audit_key),
            https: tls.is_some(),
            sso: Arc::new(
                sso::provider::Providers::new()
                    .map_err(|e| ServerError::Serve(std::io::Error::other(e.to_string())))?,
            ),
        };
        Ok(Self {
            state,
            admin_token_path: config.admin_token_path(),
            admin_created: prepared.admin_created,
            tls,
        })
    }

    /// `DATA/admin.token`. It holds the admin's token if this start created `admin`
    /// ([`Self::admin_created`]); later starts never rewrite it.
    pub fn admin_token_path(&self) -> &Path {
        &self.admin_token_path
    }

    /// Whether this start created the user `admin` (and wrote its token file).
    pub fn admin_created(&self) -> bool {
        self.admin_created
    }

    /// KMS's audit public key: it signs the heads of ended sessions. Its fingerprint is what an
    /// auditor checks bundles against (`kms-pam verify-bundle --kms-key`).
    pub fn audit_public_key(&self) -> crate::audit::evidence::signing::PublicKey {
        self.state.audit_key.public_key()
    }

    /// The KMS CA certificate (PEM) that gateways and CLIs trust.
    pub fn ca_certificate_pem(&self) -> &str {
        self.state.ca.cert_pem()
    }

    /// Serves the API (and `/metrics`) on `listener` until `shutdown` resolves, with the reaper
    /// (expiry, abandonment) running beside it. Pending long polls answer at once on shutdown;
    /// in-flight requests finish.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let acceptor = match &self.tls {
            Some(cert) => Some(tokio_rustls::TlsAcceptor::from(Arc::new(
                tls::server_config(cert.clone())?,
            ))),
            None => None,
        };
        if let Ok(addr) = listener.local_addr() {
            match &acceptor {
                Some(_) => tracing::info!(%addr, "KMS API listening on HTTPS (HTTP/2 and \
                    HTTP/1.1 by ALPN; the certificate files are re-read when they change)"),
                None => tracing::info!(%addr, "KMS API listening on plain HTTP: meant for \
                    loopback or behind a TLS-terminating proxy (--tls-cert/--tls-key serve HTTPS)"),
            }
        }
        let cancel = self.state.shutdown.clone();
        let reaper = reaper::spawn(self.state.clone());
        let notifications = feed::follow_store(&self.state).await?;
        let store = self.state.store.clone();
        let app = router::build(self.state);
        let signal = {
            let cancel = cancel.clone();
            async move {
                shutdown.await;
                cancel.cancel();
            }
        };
        let served = serve_api(listener, acceptor, app, signal).await;
        cancel.cancel();
        if let Err(e) = reaper.await {
            tracing::warn!(error = %e, "the session reaper failed");
        }
        if let Some(Err(e)) = match notifications {
            Some(task) => Some(task.await),
            None => None,
        } {
            tracing::warn!(error = %e, "following the store's change notifications failed");
        }
        store.close().await;
        served.map_err(ServerError::Serve)
    }
}

/// Most connections served at once; past it, new connections are closed at once.
const MAX_CONNECTIONS: usize = 4096;

/// Serves the router: accepts with backoff, at most [`MAX_CONNECTIONS`] at once (refusals
/// logged once per source a minute), each with the KMS header timeout (slow-loris and idle
/// connections are closed), a body read deadline and the peer address as axum's `ConnectInfo`,
/// over TLS when `acceptor` is given (handshake within 10 s); on `shutdown`, stops accepting and
/// lets open requests finish.
async fn serve_api(
    listener: TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    app: axum::Router,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    use tower::ServiceExt as _;

    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let refusal_log = crate::net::conn::LogLimiter::new(Duration::from_secs(60));
    let stopping = tokio_util::sync::CancellationToken::new();
    let tasks = tokio_util::task::TaskTracker::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = crate::net::conn::accept(&listener, "KMS API") => accepted,
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            if let Some(skipped) = refusal_log.allow(peer.ip()) {
                tracing::warn!(%peer, skipped, "KMS API connection refused: {MAX_CONNECTIONS} \
                    already open (one line per source a minute; skipped: refusals since the last)");
            }
            continue;
        };
        let app = app.clone();
        let service =
            hyper::service::service_fn(move |request: http::Request<hyper::body::Incoming>| {
                let timed_out = body_deadline::TimedOut::default();
                let version = request.version();
                let mut request = request.map(|body| {
                    axum::body::Body::new(body_deadline::DeadlineBody::new(body, &timed_out))
                });
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                let response = app.clone().oneshot(request);
                async move {
                    let response = response.await?;
                    Ok::<_, std::convert::Infallible>(timed_out.answer(version, response))
                }
            });
        let stop = stopping.clone().cancelled_owned();
        let acceptor = acceptor.clone();
        tasks.spawn(async move {
            let limits = crate::net::conn::HttpLimits::KMS;
            match acceptor {
                Some(acceptor) => {
                    if let Some(tls) = tls::accept(&acceptor, tcp, peer).await {
                        crate::net::conn::serve_http(tls, service, limits, stop).await;
                    }
                }
                None => crate::net::conn::serve_http(tcp, service, limits, stop).await,
            }
            drop(slot);
        });
    }
    // Graceful: open requests get the drain time of every listener, then connections close.
    stopping.cancel();
    tasks.close();
    tasks.wait().await;
    Ok(())
}

/// Prepares storage ([`Server::open`]) and serves until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    Server::open(config).await?.serve(listener, shutdown).await
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("admin_token_path", &self.admin_token_path)
            .field("admin_created", &self.admin_created)
            .finish_non_exhaustive()
    }
}
