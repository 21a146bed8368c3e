//! Tunnel transports between the local proxy and the gateway.
//!
//! Two halves: [`GatewayTransport`] (client side: open a tunnel connection for *this* session) and
//! [`TunnelAcceptor`] (gateway side: yield authenticated tunnel connections with the session
//! identity they proved). Backends: [`memory`] (in-process duplex pipes) and, with TLS, mutual-TLS
//! over TCP.

pub mod memory;
pub mod tls;

use std::net::SocketAddr;
use std::time::SystemTime;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::session::SessionId;

/// A byte stream both ends of a tunnel can speak HTTP over.
pub trait TunnelIo: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> TunnelIo for T {}

/// A boxed tunnel stream.
pub type BoxedIo = Box<dyn TunnelIo>;

/// Who is on the other end of an accepted tunnel, as the transport authenticated it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunnelPeer {
    /// The session the client proved (e.g. from its client certificate).
    pub session_id: SessionId,
    /// The client's address, when the transport has one.
    pub remote_addr: Option<SocketAddr>,
    /// The end of the client credential's validity, when the transport has one.
    pub not_after: Option<SystemTime>,
}

/// A tunnel connection accepted by a gateway.
pub struct AcceptedTunnel {
    /// The stream, after any handshake.
    pub io: BoxedIo,
    /// The authenticated peer.
    pub peer: TunnelPeer,
}

/// Errors of the tunnel transports.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The gateway could not be reached.
    #[error("gateway unreachable: {0}")]
    Unreachable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The handshake failed or the peer was refused (certificate, protocol, session).
    #[error("tunnel refused: {0}")]
    Refused(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The listener or connector was shut down.
    #[error("tunnel transport closed")]
    Closed,
}

impl TransportError {
    /// A [`TransportError::Unreachable`] with the underlying failure (a message or an error).
    pub fn unreachable(reason: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Unreachable(reason.into())
    }

    /// A [`TransportError::Refused`] with the reason (a message or an error).
    pub fn refused(reason: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Refused(reason.into())
    }
}

/// The client side: opens tunnel connections to the gateway for one session.
///
/// A connector is bound to its session (for mutual TLS, by the client certificate it presents), so
/// `connect` takes no arguments. Connections are long-lived; callers multiplex requests over them.
///
/// Failure semantics: `Unreachable` is transient (retry with backoff); `Refused` is final for the
/// session's credential (expired, terminated, wrong gateway).
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait GatewayTransport: Send + Sync + 'static {
    /// Opens one tunnel connection.
    async fn connect(&self) -> Result<BoxedIo, TransportError>;
}

/// The gateway side: yields tunnel connections whose peer has been authenticated.
///
/// Implementations run handshakes concurrently and only hand out connections that passed; refused
/// peers are logged with their reason and never reach the proxy. `Closed` ends the accept loop.
#[async_trait]
pub trait TunnelAcceptor: Send + 'static {
    /// The next authenticated tunnel.
    async fn accept(&mut self) -> Result<AcceptedTunnel, TransportError>;
}

#[async_trait]
impl TunnelAcceptor for Box<dyn TunnelAcceptor> {
    async fn accept(&mut self) -> Result<AcceptedTunnel, TransportError> {
        (**self).accept().await
    }
}

/// Tunnels from several acceptors (a listener and relays) as one.
struct Merged {
    ready: tokio::sync::mpsc::Receiver<AcceptedTunnel>,
    _forwarders: Vec<tokio_util::task::AbortOnDropHandle<()>>,
}

#[async_trait]
impl TunnelAcceptor for Merged {
    async fn accept(&mut self) -> Result<AcceptedTunnel, TransportError> {
        self.ready.recv().await.ok_or(TransportError::Closed)
    }
}

/// One acceptor yielding the tunnels of all of `acceptors`; it reports `Closed` once every one
/// of them has. Dropping it drops them.
///
/// # Panics
///
/// When called outside a Tokio runtime, since it spawns a forwarding task per acceptor.
pub fn merge(acceptors: Vec<Box<dyn TunnelAcceptor>>) -> Box<dyn TunnelAcceptor> {
    let (tx, ready) = tokio::sync::mpsc::channel(64);
    let forwarders = acceptors
        .into_iter()
        .map(|mut acceptor| {
            let tx = tx.clone();
            let forward = async move {
                while let Ok(tunnel) = acceptor.accept().await {
                    if tx.send(tunnel).await.is_err() {
                        return;
                    }
                }
            };
            tokio_util::task::AbortOnDropHandle::new(tokio::spawn(forward))
        })
        .collect();
    Box::new(Merged {
        ready,
        _forwarders: forwarders,
    })
}

impl std::fmt::Debug for AcceptedTunnel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcceptedTunnel")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}
