//! The CLI's side: reaches the session's gateway through its relays, trying them in order, and
//! runs the ordinary tunnel handshake inside the relay's stream.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::frame::{read_status, write_hello, RelayCode};
use super::{check_relay, CLIENT_ALPN};
use crate::tls::{tunnel_client_config, PrivateKeyPem, TlsError, TUNNEL_ALPN};
use crate::transport::tls::{
    handshake_error, server_name_of, ClientTunnel, CONNECT_TIMEOUT, HANDSHAKE_TIMEOUT,
};
use crate::transport::{BoxedIo, GatewayTransport, TransportError};

/// Opens tunnels to one gateway through its relays, presenting one session's certificate to
/// the relay (outside) and to the gateway (inside).
///
/// A relay that cannot be reached, does not hold the gateway, is overloaded or draining is
/// skipped for the next; the one that worked is tried first next time. A refusal of the
/// session itself (expired, revoked, forbidden) is final.
pub struct RelayConnector {
    relays: Vec<String>,
    gateway: String,
    gateway_addr: Arc<str>,
    inner_name: ServerName<'static>,
    outer: tokio_rustls::TlsConnector,
    inner: tokio_rustls::TlsConnector,
    pub(super) preferred: AtomicUsize,
}

/// How one relay's attempt failed.
enum Attempt {
    /// Try the next relay.
    Next(String),
    /// The session was refused: no relay will do better.
    Final(TransportError),
}

impl RelayConnector {
    /// A connector for a session of gateway `gateway`: trusts `ca_cert_pem` (the KMS CA) for
    /// relays and the gateway, presents the session certificate and key, expects the gateway's
    /// certificate to name the host of `gateway_address`, and tries `relays` (`host:port`) in
    /// order.
    ///
    /// # Errors
    ///
    /// When the TLS material or the gateway address is unusable.
    pub fn from_pem(
        ca_cert_pem: &str,
        session_cert_pem: &str,
        session_key: &PrivateKeyPem,
        gateway: &str,
        gateway_address: &str,
        relays: Vec<String>,
    ) -> Result<Self, TlsError> {
        let outer =
            tunnel_client_config(ca_cert_pem, session_cert_pem, session_key, &[CLIENT_ALPN])?;
        let inner =
            tunnel_client_config(ca_cert_pem, session_cert_pem, session_key, &[TUNNEL_ALPN])?;
        Ok(Self {
            relays,
            gateway: gateway.to_owned(),
            gateway_addr: gateway_address.into(),
            inner_name: server_name_of(gateway_address)?,
            outer: tokio_rustls::TlsConnector::from(outer),
            inner: tokio_rustls::TlsConnector::from(inner),
            preferred: AtomicUsize::new(0),
        })
    }

    /// The relays, in the order given.
    pub fn relays(&self) -> &[String] {
        &self.relays
    }

    async fn via(&self, relay: &str) -> Result<BoxedIo, Attempt> {
        let next = |what: String| Attempt::Next(format!("relay {relay}: {what}"));
        let server_name = server_name_of(relay).map_err(|e| next(e.to_string()))?;
        let tcp = timeout(CONNECT_TIMEOUT, TcpStream::connect(relay))
            .await
            .map_err(|_| next(format!("no connection within {CONNECT_TIMEOUT:?}")))?
            .map_err(|e| next(format!("cannot connect: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let mut outer = timeout(HANDSHAKE_TIMEOUT, self.outer.connect(server_name, tcp))
            .await
            .map_err(|_| next(format!("no TLS handshake within {HANDSHAKE_TIMEOUT:?}")))?
            .map_err(|e| next(format!("TLS: {}", handshake_error(relay, &e))))?;
        let connection = outer.get_ref().1;
        if connection.alpn_protocol() != Some(CLIENT_ALPN) {
            return Err(next("it does not speak the relay protocol".to_owned()));
        }
        check_relay(connection.peer_certificates()).map_err(next)?;
        write_hello(&mut outer, &self.gateway)
            .await
            .map_err(|e| next(e.to_string()))?;
        let status = timeout(HANDSHAKE_TIMEOUT, read_status(&mut outer))
            .await
            .map_err(|_| next("no answer in time".to_owned()))?
            .map_err(|e| next(e.to_string()))?;
        let message = status.message;
        match status.code {
            RelayCode::Ok => {}
            RelayCode::GatewayOffline => {
                return Err(next(format!(
                    "gateway {} is offline there ({message})",
                    self.gateway
                )))
            }
            RelayCode::Overloaded => {
                return Err(next(format!(
                    "overloaded ({message}); retry in {} s",
                    status.retry_after.as_secs().max(1)
                )))
            }
            RelayCode::SessionExpired => {
                return Err(Attempt::Final(TransportError::refused(format!(
                    "session expired ({message}); open a new one with `kms-pam pam access`"
                ))))
            }
            RelayCode::Revoked => {
                return Err(Attempt::Final(TransportError::refused(format!(
                    "session ended or revoked ({message}); open a new one with `kms-pam pam access` if you still may"
                ))))
            }
            RelayCode::Forbidden => {
                return Err(Attempt::Final(TransportError::refused(format!(
                    "relay {relay} refused the session: {message}"
                ))))
            }
            RelayCode::Unknown(code) => {
                return Err(next(format!("unknown status {code} ({message})")))
            }
        }
        let inner = timeout(
            HANDSHAKE_TIMEOUT,
            self.inner.connect(self.inner_name.clone(), outer),
        )
        .await
        .map_err(|_| {
            next(format!(
                "gateway {} did not complete the TLS handshake in time",
                self.gateway
            ))
        })?
        .map_err(|e| Attempt::Final(handshake_error(&self.gateway_addr, &e)))?;
        if inner.get_ref().1.alpn_protocol() != Some(TUNNEL_ALPN) {
            return Err(Attempt::Final(TransportError::refused(format!(
                "gateway {} does not speak the tunnel protocol",
                self.gateway
            ))));
        }
        Ok(Box::new(ClientTunnel::new(
            inner,
            Arc::clone(&self.gateway_addr),
        )))
    }
}

#[async_trait]
impl GatewayTransport for RelayConnector {
    async fn connect(&self) -> Result<BoxedIo, TransportError> {
        let count = self.relays.len();
        if count == 0 {
            return Err(TransportError::unreachable(format!(
                "gateway {} is reached through relays, and none holds it now; check that the gateway runs and can reach its relays (`kms-pam gateway list`)",
                self.gateway
            )));
        }
        let first = self.preferred.load(Ordering::Relaxed) % count;
        let mut failures = Vec::new();
        for offset in 0..count {
            let index = (first + offset) % count;
            match self.via(&self.relays[index]).await {
                Ok(io) => {
                    if offset > 0 {
                        tracing::warn!(
                            "reached gateway {} through relay {} ({})",
                            self.gateway,
                            self.relays[index],
                            failures.join("; ")
                        );
                    }
                    self.preferred.store(index, Ordering::Relaxed);
                    return Ok(io);
                }
                Err(Attempt::Final(refused)) => return Err(refused),
                Err(Attempt::Next(why)) => failures.push(why),
            }
        }
        Err(TransportError::unreachable(failures.join("; ")))
    }
}

impl std::fmt::Debug for RelayConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayConnector")
            .field("gateway", &self.gateway)
            .field("relays", &self.relays)
            .finish_non_exhaustive()
    }
}
