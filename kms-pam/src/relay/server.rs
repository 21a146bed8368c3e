//! The relay role: accepts gateways' outbound tunnels and CLIs' connections on one TLS port,
//! authenticates both from their KMS-issued certificates, and joins each CLI connection to a
//! `CONNECT` stream on its gateway's tunnel. It sees the inner TLS only as ciphertext.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Empty;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

use super::frame::{read_hello, write_status, RelayCode, RelayStatus};
use super::metrics::RelayMetrics;
use super::table::TunnelTable;
use super::{fingerprint, headers, Keepalive, RelayError, RelayTls, CLIENT_ALPN, GATEWAY_ALPN};
use crate::tls::{tunnel_server_config, GatewayIdentity, SessionIdentity};
use crate::transport::tls::HANDSHAKE_TIMEOUT;

/// How long a CLI has to send its hello after the handshake.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the gateway has to accept a stream.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// What an overloaded relay asks CLIs to wait.
const OVERLOAD_RETRY: Duration = Duration::from_secs(5);
/// Failed handshakes are logged once per source in this period.
const FAILURE_LOG_PERIOD: Duration = Duration::from_secs(60);

/// A relay's settings.
#[non_exhaustive]
pub struct RelayConfig {
    /// The relay's name (in logs and in the statuses CLIs read).
    pub name: String,
    /// Its TLS identity and the KMS CA it verifies both sides with.
    pub tls: RelayTls,
    /// Keepalive on gateways' tunnels: a black-holed gateway is dropped within
    /// `interval + timeout`.
    pub keepalive: Keepalive,
    /// Relayed streams at once; beyond, CLIs are told the relay is overloaded.
    pub max_streams: usize,
    /// How long a stopping relay lets relayed streams finish after telling gateways to
    /// re-tunnel.
    pub drain_grace: Duration,
    /// Serve `/healthz`, `/readyz` and `/metrics` here.
    pub metrics_listener: Option<TcpListener>,
}

impl RelayConfig {
    /// A relay named `name` with `tls`, default limits and no metrics endpoint.
    pub fn new(name: impl Into<String>, tls: RelayTls) -> Self {
        Self {
            name: name.into(),
            tls,
            keepalive: Keepalive::default(),
            max_streams: 10_000,
            drain_grace: Duration::from_secs(30),
            metrics_listener: None,
        }
    }
}

impl std::fmt::Debug for RelayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayConfig")
            .field("name", &self.name)
            .field("keepalive", &self.keepalive)
            .field("max_streams", &self.max_streams)
            .field("drain_grace", &self.drain_grace)
            .finish_non_exhaustive()
    }
}

struct Relay {
    name: String,
    tls: tokio_rustls::TlsAcceptor,
    table: TunnelTable,
    metrics: Arc<RelayMetrics>,
    streams: Arc<Semaphore>,
    keepalive: Keepalive,
    draining: CancellationToken,
    failure_log: crate::net::conn::LogLimiter,
}

/// Serves until `shutdown` resolves, then drains: stops accepting, tells every gateway to
/// re-tunnel, lets relayed streams finish for `drain_grace`, and returns.
pub async fn serve<F>(
    listener: TcpListener,
    config: RelayConfig,
    shutdown: F,
) -> Result<(), RelayError>
where
    F: Future<Output = ()>,
{
    let tls = tunnel_server_config(
        &config.tls.ca_pem,
        &config.tls.cert_pem,
        &config.tls.key,
        &[CLIENT_ALPN, GATEWAY_ALPN],
    )
    .map_err(RelayError::Tls)?;
    let relay = Arc::new(Relay {
        name: config.name,
        tls: tokio_rustls::TlsAcceptor::from(tls),
        table: TunnelTable::default(),
        metrics: Arc::new(RelayMetrics::new()),
        streams: Arc::new(Semaphore::new(config.max_streams)),
        keepalive: config.keepalive,
        draining: CancellationToken::new(),
        failure_log: crate::net::conn::LogLimiter::new(FAILURE_LOG_PERIOD),
    });
    let stop_metrics = CancellationToken::new();
    if let Some(listener) = config.metrics_listener {
        let exposition = relay.exposition();
        let stop = stop_metrics.clone().cancelled_owned();
        tokio::spawn(async move {
            if let Err(e) = crate::metrics::serve(listener, exposition, stop).await {
                tracing::error!(error = %e, "relay metrics endpoint stopped");
            }
        });
    }
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            (tcp, peer) = crate::net::conn::accept(&listener, "relay") => {
                connections.spawn(Arc::clone(&relay).connection(tcp, peer));
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    relay.drain(config.max_streams, config.drain_grace).await;
    stop_metrics.cancel();
    connections.shutdown().await;
    Ok(())
}

impl Relay {
    fn exposition(self: &Arc<Self>) -> crate::metrics::Exposition {
        let relay = Arc::clone(self);
        crate::metrics::Exposition {
            scrape: Arc::new(move || {
                relay.metrics.set_tunnels(relay.table.len());
                relay.metrics.encode()
            }),
            ready: Arc::new(|| true),
        }
    }

    async fn connection(self: Arc<Self>, tcp: TcpStream, peer: SocketAddr) {
        let tls = match timeout(HANDSHAKE_TIMEOUT, self.tls.accept(tcp)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => return self.handshake_failed(peer, &e),
            Err(_) => return self.handshake_failed(peer, &"no TLS handshake in time"),
        };
        let connection = tls.get_ref().1;
        let alpn = connection.alpn_protocol().map(<[u8]>::to_vec);
        let Some(leaf) = connection
            .peer_certificates()
            .and_then(|certs| certs.first())
            .map(|cert| cert.clone().into_owned())
        else {
            return self.handshake_failed(peer, &"no client certificate");
        };
        match alpn.as_deref() {
            Some(GATEWAY_ALPN) => self.gateway_tunnel(tls, &leaf, peer).await,
            Some(CLIENT_ALPN) => self.client(tls, &leaf, peer).await,
            _ => self.handshake_failed(peer, &"no relay protocol negotiated"),
        }
    }

    fn handshake_failed(&self, peer: SocketAddr, reason: &dyn std::fmt::Display) {
        self.metrics.refused("handshake");
        if let Some(suppressed) = self.failure_log.allow(peer.ip()) {
            tracing::warn!(%peer, %reason, suppressed_since_last = suppressed,
                "relay connection refused");
        }
    }

    /// A gateway's tunnel: the relay becomes the HTTP/2 client on the connection the gateway
    /// dialled and keeps it in the table until it dies or a newer one replaces it.
    async fn gateway_tunnel<I>(&self, tls: I, leaf: &CertificateDer<'_>, peer: SocketAddr)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        let gateway = match GatewayIdentity::from_cert_der(leaf) {
            Ok(identity) => identity.name,
            Err(e) => {
                return self.handshake_failed(peer, &format!("not a gateway certificate: {e}"))
            }
        };
        let handshake = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(self.keepalive.interval)
            .keep_alive_timeout(self.keepalive.timeout)
            .keep_alive_while_idle(true)
            .initial_stream_window_size(crate::net::http2::STREAM_WINDOW)
            .initial_connection_window_size(crate::net::http2::RELAY_CONNECTION_WINDOW)
            .handshake::<_, Empty<Bytes>>(TokioIo::new(tls))
            .await;
        let (sender, conn) = match handshake {
            Ok(pair) => pair,
            Err(e) => return self.handshake_failed(peer, &format!("HTTP/2 with gateway: {e}")),
        };
        let tunnel = self.table.insert(&gateway, sender);
        self.metrics.set_tunnels(self.table.len());
        tracing::info!(%gateway, %peer, relay = %self.name, "gateway tunnel up");
        let why = match conn.await {
            Ok(()) => "closed".to_owned(),
            Err(e) => e.to_string(),
        };
        self.table.remove(&gateway, tunnel.id);
        self.metrics.set_tunnels(self.table.len());
        tracing::info!(%gateway, %peer, reason = %why, "gateway tunnel down");
    }

    /// A CLI: read its hello, answer a status, and on `ok` splice its bytes to a stream on
    /// the gateway's tunnel until either side ends or the session certificate expires.
    async fn client<I>(&self, mut tls: I, leaf: &CertificateDer<'_>, peer: SocketAddr)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        let identity = match SessionIdentity::from_cert_der(leaf) {
            Ok(identity) => identity,
            Err(e) => {
                return self.handshake_failed(peer, &format!("not a session certificate: {e}"))
            }
        };
        let wanted = match timeout(HELLO_TIMEOUT, read_hello(&mut tls)).await {
            Ok(Ok(wanted)) => wanted,
            Ok(Err(e)) => return self.handshake_failed(peer, &format!("hello: {e}")),
            Err(_) => return self.handshake_failed(peer, &"no hello in time"),
        };
        let permit = match self.streams.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                let status = RelayStatus::new(
                    RelayCode::Overloaded,
                    format!("relay {} carries as many streams as it may", self.name),
                );
                return self
                    .refuse(tls, &identity, status.retry_after(OVERLOAD_RETRY))
                    .await;
            }
        };
        let upgraded = match self.open(&identity, &wanted, leaf, peer).await {
            Ok(upgraded) => upgraded,
            Err(status) => return self.refuse(tls, &identity, status).await,
        };
        if write_status(&mut tls, &RelayStatus::ok()).await.is_err() {
            return;
        }
        self.metrics.stream_opened();
        let left = identity
            .not_after
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        let (up, down) = (AtomicU64::new(0), AtomicU64::new(0));
        let (mut from_cli, mut to_cli) = tokio::io::split(tls);
        let (mut from_gateway, mut to_gateway) = tokio::io::split(TokioIo::new(upgraded));
        // Either side's end ends both: the tunnel inside is TLS, which never half-closes, so a
        // stream the gateway ended (a terminated session) is closed toward the CLI at once and
        // holds nothing here, whatever the CLI does.
        tokio::select! {
            () = pump(&mut from_cli, &mut to_gateway, &up) => {}
            () = pump(&mut from_gateway, &mut to_cli, &down) => {}
            () = tokio::time::sleep(left) => {
                tracing::info!(session = %identity.session_id, "session expired; relayed stream cut");
            }
        }
        let _ = timeout(Duration::from_secs(1), to_cli.shutdown()).await;
        self.metrics
            .add_bytes(up.load(Ordering::Relaxed), down.load(Ordering::Relaxed));
        self.metrics.stream_closed();
        drop(permit);
    }

    /// Opens the stream to the gateway, or says why not.
    async fn open(
        &self,
        identity: &SessionIdentity,
        wanted: &str,
        leaf: &CertificateDer<'_>,
        peer: SocketAddr,
    ) -> Result<hyper::upgrade::Upgraded, RelayStatus> {
        if self.draining.is_cancelled() {
            let status = RelayStatus::new(
                RelayCode::Overloaded,
                format!("relay {} is draining; use another relay", self.name),
            );
            return Err(status.retry_after(Duration::from_secs(1)));
        }
        if identity.gateway != wanted {
            return Err(RelayStatus::new(
                RelayCode::Forbidden,
                format!(
                    "this session's certificate is for gateway {:?}, not {wanted:?}",
                    identity.gateway
                ),
            ));
        }
        if identity.not_after <= SystemTime::now() {
            return Err(RelayStatus::new(
                RelayCode::SessionExpired,
                "the session expired",
            ));
        }
        let offline = |why: String| {
            RelayStatus::new(
                RelayCode::GatewayOffline,
                format!(
                    "gateway {wanted:?} has no tunnel to relay {}{why}",
                    self.name
                ),
            )
        };
        let Some(tunnel) = self.table.get(wanted) else {
            return Err(offline(String::new()));
        };
        let request = Request::builder()
            .method(Method::CONNECT)
            .uri("session.kms-pam:443")
            .header(headers::SESSION, &identity.session_id)
            .header(headers::CLIENT_CERT, fingerprint(leaf))
            .header(headers::CLIENT_ADDR, peer.to_string())
            .body(Empty::new())
            .map_err(|e| offline(format!(" ({e})")))?;
        let mut sender = tunnel.sender.clone();
        let response = match timeout(OPEN_TIMEOUT, sender.send_request(request)).await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => return Err(offline(format!(" (its tunnel failed: {e})"))),
            Err(_) => return Err(offline(" (it did not answer in time)".to_owned())),
        };
        match response.status() {
            StatusCode::OK => hyper::upgrade::on(response)
                .await
                .map_err(|e| offline(format!(" ({e})"))),
            StatusCode::SERVICE_UNAVAILABLE => Err(RelayStatus::new(
                RelayCode::Overloaded,
                format!("gateway {wanted:?} is at its limit"),
            )
            .retry_after(OVERLOAD_RETRY)),
            _ => Err(headers::refusal(response.headers())),
        }
    }

    async fn refuse<I>(&self, mut tls: I, identity: &SessionIdentity, status: RelayStatus)
    where
        I: tokio::io::AsyncWrite + Unpin,
    {
        self.metrics.refused(status.code.as_str());
        tracing::info!(session = %identity.session_id, gateway = %identity.gateway,
            code = status.code.as_str(), reason = %status.message, "relayed session refused");
        if write_status(&mut tls, &status).await.is_ok() {
            let _ = tls.shutdown().await;
        }
    }

    /// Tells every gateway to re-tunnel, then waits for relayed streams to finish (at most
    /// `grace`).
    async fn drain(&self, max_streams: usize, grace: Duration) {
        self.draining.cancel();
        let tunnels = self.table.all();
        tracing::info!(relay = %self.name, gateways = tunnels.len(), "draining");
        for (gateway, tunnel) in tunnels {
            let mut sender = tunnel.sender.clone();
            tokio::spawn(async move {
                let request = Request::builder()
                    .method(Method::POST)
                    .uri(format!("https://relay.kms-pam{}", headers::DRAIN_PATH))
                    .body(Empty::new());
                if let Ok(request) = request {
                    if let Err(e) = timeout(OPEN_TIMEOUT, sender.send_request(request)).await {
                        tracing::debug!(%gateway, error = %e, "drain notice not delivered");
                    }
                }
            });
        }
        let all = u32::try_from(max_streams).unwrap_or(u32::MAX);
        let finished = timeout(grace, self.streams.acquire_many(all)).await;
        if finished.is_err() {
            tracing::warn!(relay = %self.name, "drain grace over; cutting the streams left");
        }
    }
}

/// Copies `from` into `to` until either ends or fails, counting the bytes.
async fn pump<R, W>(from: &mut R, to: &mut W, count: &AtomicU64)
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).await.is_err() || to.flush().await.is_err() {
            return;
        }
        count.fetch_add(n as u64, Ordering::Relaxed);
    }
}
