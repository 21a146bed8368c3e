//! In-process tunnels over `tokio::io::duplex` pipes: the whole path in one process, for tests,
//! examples and embedders that run the local proxy and the gateway together.

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::{
    AcceptedTunnel, BoxedIo, GatewayTransport, TransportError, TunnelAcceptor, TunnelPeer,
};
use crate::session::SessionId;

/// Pipe buffer per direction; large enough that a 64 KiB HTTP/2 window never waits on it.
const PIPE_BUFFER: usize = 256 * 1024;

/// The gateway end: accepts tunnels dialled through [`MemoryGateway::connector`].
#[derive(Debug)]
pub struct MemoryAcceptor {
    incoming: mpsc::Receiver<AcceptedTunnel>,
}

/// A handle to dial a [`MemoryAcceptor`]; clone it freely.
#[derive(Debug, Clone)]
pub struct MemoryGateway {
    dial: mpsc::Sender<AcceptedTunnel>,
}

/// Creates a connected gateway handle and acceptor.
pub fn memory_gateway() -> (MemoryGateway, MemoryAcceptor) {
    let (dial, incoming) = mpsc::channel(64);
    (MemoryGateway { dial }, MemoryAcceptor { incoming })
}

impl MemoryGateway {
    /// A client connector that authenticates as `session_id` (the in-memory stand-in for a session
    /// certificate).
    pub fn connector(&self, session_id: SessionId) -> MemoryConnector {
        MemoryConnector {
            gateway: self.clone(),
            session_id,
        }
    }
}

/// The client end for one session.
#[derive(Debug, Clone)]
pub struct MemoryConnector {
    gateway: MemoryGateway,
    session_id: SessionId,
}

#[async_trait]
impl GatewayTransport for MemoryConnector {
    async fn connect(&self) -> Result<BoxedIo, TransportError> {
        let (client, server) = tokio::io::duplex(PIPE_BUFFER);
        let tunnel = AcceptedTunnel {
            io: Box::new(server),
            peer: TunnelPeer {
                session_id: self.session_id.clone(),
                remote_addr: None,
                not_after: None,
            },
        };
        self.gateway
            .dial
            .send(tunnel)
            .await
            .map_err(|_| TransportError::unreachable("in-memory gateway stopped"))?;
        Ok(Box::new(client))
    }
}

#[async_trait]
impl TunnelAcceptor for MemoryAcceptor {
    async fn accept(&mut self) -> Result<AcceptedTunnel, TransportError> {
        self.incoming.recv().await.ok_or(TransportError::Closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn dial_and_accept_carry_the_session() {
        let (gateway, mut acceptor) = memory_gateway();
        let connector = gateway.connector(SessionId::new("s-1"));
        let mut client = connector.connect().await.unwrap();
        let mut accepted = acceptor.accept().await.unwrap();
        assert_eq!(accepted.peer.session_id, SessionId::new("s-1"));
        client.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        accepted.io.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
    }

    #[tokio::test]
    async fn dialling_a_stopped_gateway_is_unreachable() {
        let (gateway, acceptor) = memory_gateway();
        drop(acceptor);
        let err = gateway.connector(SessionId::new("s")).connect().await.err();
        assert!(matches!(err, Some(TransportError::Unreachable(_))));
    }
}
