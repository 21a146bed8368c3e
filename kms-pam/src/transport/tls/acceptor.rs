//! The gateway side: accepts TCP connections, runs mutual-TLS handshakes concurrently and hands
//! out only tunnels whose session certificate names this gateway.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rustls::ServerConfig;
use rustls_pki_types::CertificateDer;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::timeout;
use tokio_util::task::AbortOnDropHandle;

use super::HANDSHAKE_TIMEOUT;
use crate::session::SessionId;
use crate::tls::{SessionIdentity, TlsError};
use crate::transport::{AcceptedTunnel, TransportError, TunnelAcceptor, TunnelPeer};

/// Handshakes in flight at once; further connections wait in the kernel's backlog, so a flood
/// of silent clients costs bounded memory.
const MAX_HANDSHAKES_IN_FLIGHT: usize = 1024;

/// Authenticated tunnels waiting for [`TlsTunnelAcceptor::accept`]; when full, finished
/// handshakes wait, and with them the accept loop, which pushes back on clients.
const READY_QUEUE: usize = 64;

/// Failed handshakes are logged once per source address in this period, with the count skipped.
const FAILURE_LOG_PERIOD: Duration = Duration::from_secs(60);

/// Outcome counters of a [`TlsTunnelAcceptor`]; each TCP connection lands in exactly one.
#[derive(Debug, Default)]
pub struct AcceptorStats {
    handshakes_ok: AtomicU64,
    handshakes_failed: AtomicU64,
    refused: AtomicU64,
}

impl AcceptorStats {
    /// Tunnels that completed the handshake, passed the identity check and were handed out.
    pub fn handshakes_ok(&self) -> u64 {
        self.handshakes_ok.load(Ordering::Relaxed)
    }

    /// Connections whose TLS handshake failed or timed out (no, foreign, expired or not yet
    /// valid client certificate, wrong protocol, silent client).
    pub fn handshakes_failed(&self) -> u64 {
        self.handshakes_failed.load(Ordering::Relaxed)
    }

    /// Connections that completed the handshake but were refused by the identity check (not a
    /// session certificate, a session of another gateway, no tunnel protocol negotiated).
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

/// Accepts mutual-TLS tunnels on a TCP listener for the gateway `gateway_name`.
///
/// A background task accepts connections and runs their handshakes concurrently (each bounded
/// by a timeout); [`accept`](TunnelAcceptor::accept) yields the tunnels that passed. Refused
/// connections are closed and logged at `warn` with the peer address and the reason. Listener
/// errors (e.g. out of file descriptors) are logged and retried, so `accept` returns
/// [`TransportError::Closed`] only if the loop died. Dropping the acceptor stops the loop,
/// closes the listener and aborts handshakes in flight.
#[derive(Debug)]
pub struct TlsTunnelAcceptor {
    ready: mpsc::Receiver<AcceptedTunnel>,
    stats: Arc<AcceptorStats>,
    local_addr: Option<SocketAddr>,
    _accept_loop: AbortOnDropHandle<()>,
}

/// What every handshake task needs.
struct Handshaker {
    tls: tokio_rustls::TlsAcceptor,
    gateway_name: String,
    stats: Arc<AcceptorStats>,
    ready: mpsc::Sender<AcceptedTunnel>,
    timeout: Duration,
    failure_log: crate::net::conn::LogLimiter,
}

impl TlsTunnelAcceptor {
    /// Starts accepting on `listener` with `config` (normally
    /// [`tunnel_server_config`](crate::tls::tunnel_server_config), which requires and verifies
    /// client certificates).
    ///
    /// # Panics
    ///
    /// When called outside a Tokio runtime, since it spawns the accept loop.
    pub fn new(listener: TcpListener, config: Arc<ServerConfig>, gateway_name: String) -> Self {
        Self::with_handshake_timeout(listener, config, gateway_name, HANDSHAKE_TIMEOUT)
    }

    pub(super) fn with_handshake_timeout(
        listener: TcpListener,
        config: Arc<ServerConfig>,
        gateway_name: String,
        handshake_timeout: Duration,
    ) -> Self {
        let period = FAILURE_LOG_PERIOD;
        Self::with_limits(listener, config, gateway_name, handshake_timeout, period)
    }

    /// As [`new`](Self::new), with the handshake timeout and the period in which one failed
    /// handshake per source is logged.
    pub(super) fn with_limits(
        listener: TcpListener,
        config: Arc<ServerConfig>,
        gateway_name: String,
        handshake_timeout: Duration,
        failure_log_period: Duration,
    ) -> Self {
        let (ready_tx, ready) = mpsc::channel(READY_QUEUE);
        let stats = Arc::new(AcceptorStats::default());
        let handshaker = Arc::new(Handshaker {
            tls: tokio_rustls::TlsAcceptor::from(config),
            gateway_name,
            stats: Arc::clone(&stats),
            ready: ready_tx,
            timeout: handshake_timeout,
            failure_log: crate::net::conn::LogLimiter::new(failure_log_period),
        });
        let local_addr = listener.local_addr().ok();
        let task = tokio::spawn(accept_loop(listener, handshaker));
        Self {
            ready,
            stats,
            local_addr,
            _accept_loop: AbortOnDropHandle::new(task),
        }
    }

    /// The handshake counters, shared with the accept loop (e.g. for metrics).
    pub fn stats(&self) -> Arc<AcceptorStats> {
        Arc::clone(&self.stats)
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }
}

#[async_trait]
impl TunnelAcceptor for TlsTunnelAcceptor {
    async fn accept(&mut self) -> Result<AcceptedTunnel, TransportError> {
        self.ready.recv().await.ok_or(TransportError::Closed)
    }
}

/// Accepts connections until the acceptor is dropped; each handshake runs in `handshakes`, so
/// ending this task (abort on drop) also aborts every handshake in flight.
async fn accept_loop(listener: TcpListener, handshaker: Arc<Handshaker>) {
    let mut handshakes = JoinSet::new();
    loop {
        tokio::select! {
            Some(_) = handshakes.join_next(), if !handshakes.is_empty() => {}
            // The shared accept: per-connection errors skipped, others backed off.
            (tcp, peer) = crate::net::conn::accept(&listener, "tunnel"),
                if handshakes.len() < MAX_HANDSHAKES_IN_FLIGHT =>
            {
                handshakes.spawn(Arc::clone(&handshaker).establish(tcp, peer));
            }
        }
    }
}

impl Handshaker {
    /// Runs one handshake and identity check; hands the tunnel out or logs why not.
    async fn establish(self: Arc<Self>, tcp: TcpStream, peer: SocketAddr) {
        // A failure only costs latency, never correctness.
        let _ = tcp.set_nodelay(true);
        let tls = match timeout(self.timeout, self.tls.accept(tcp)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => return self.handshake_failed(peer, &e),
            Err(_) => {
                let reason = format!("no TLS handshake within {:?}", self.timeout);
                return self.handshake_failed(peer, &reason);
            }
        };
        let connection = tls.get_ref().1;
        let checked = authenticate(
            connection.alpn_protocol(),
            connection.peer_certificates(),
            &self.gateway_name,
        );
        let identity = match checked {
            Ok(identity) => identity,
            Err(refusal) => {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(peer = %peer, reason = %refusal, "tunnel refused");
                return;
            }
        };
        self.stats.handshakes_ok.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(peer = %peer, session = %identity.session_id, user = %identity.user,
            "tunnel accepted");
        let tunnel = AcceptedTunnel {
            io: Box::new(tls),
            peer: TunnelPeer {
                session_id: SessionId::new(identity.session_id),
                remote_addr: Some(peer),
                not_after: Some(identity.not_after),
            },
        };
        // Fails only when the acceptor is gone, and then the tunnel is dropped as it should be.
        let _ = self.ready.send(tunnel).await;
    }

    fn handshake_failed(&self, peer: SocketAddr, reason: &dyn std::fmt::Display) {
        self.stats.handshakes_failed.fetch_add(1, Ordering::Relaxed);
        // Unauthenticated peers choose how often this happens: one line per source a minute,
        // the rest counted (and in the handshake metrics).
        if let Some(suppressed) = self.failure_log.allow(peer.ip()) {
            tracing::warn!(peer = %peer, reason = %reason, suppressed_since_last = suppressed,
                "tunnel TLS handshake failed");
        }
    }
}

/// Why a client that completed the handshake is not let through.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refusal {
    #[error("the client did not negotiate a tunnel protocol")]
    NoProtocol,
    #[error("the client presented no certificate")]
    NoCertificate,
    #[error("not a session certificate: {0}")]
    NotASession(TlsError),
    #[error("session {session} of user {user} is for gateway {theirs:?}, not {ours:?}")]
    OtherGateway {
        session: String,
        user: String,
        theirs: String,
        ours: String,
    },
}

/// Reads the session identity of a verified handshake and checks it names `gateway_name`.
///
/// rustls has verified the chain, validity period and client-auth usage already; this decides
/// only whether the verified certificate is a session certificate for this gateway.
pub(crate) fn authenticate(
    alpn: Option<&[u8]>,
    peer_certs: Option<&[CertificateDer<'_>]>,
    gateway_name: &str,
) -> Result<SessionIdentity, Refusal> {
    // The server configuration fixes which protocols can be negotiated; none at all means a
    // client that never agreed to speak the tunnel protocol.
    if alpn.is_none() {
        return Err(Refusal::NoProtocol);
    }
    let end_entity = peer_certs
        .and_then(|certs| certs.first())
        .ok_or(Refusal::NoCertificate)?;
    let identity = SessionIdentity::from_cert_der(end_entity).map_err(Refusal::NotASession)?;
    if identity.gateway != gateway_name {
        return Err(Refusal::OtherGateway {
            session: identity.session_id,
            user: identity.user,
            theirs: identity.gateway,
            ours: gateway_name.to_owned(),
        });
    }
    Ok(identity)
}
