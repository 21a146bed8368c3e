//! The CLI side: dials the gateway and opens one mutual-TLS tunnel per call.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::errors::handshake_error;
use super::stream::ClientTunnel;
use super::{CONNECT_TIMEOUT, HANDSHAKE_TIMEOUT};
use crate::tls::{tunnel_client_config, InvalidNameReason, PrivateKeyPem, TlsError, TUNNEL_ALPN};
use crate::transport::{BoxedIo, GatewayTransport, TransportError};

/// Opens mutual-TLS tunnels to one gateway, presenting one session's certificate.
///
/// Cheap to clone; clones share the TLS configuration.
#[derive(Clone)]
pub struct TlsConnector {
    /// `host:port`, shared with every stream for its error messages.
    gateway_addr: Arc<str>,
    server_name: ServerName<'static>,
    tls: tokio_rustls::TlsConnector,
    pub(super) connect_timeout: Duration,
    pub(super) handshake_timeout: Duration,
}

impl TlsConnector {
    /// A connector dialling `gateway_addr` (`host:port`, resolved on each connect) and verifying
    /// the gateway's certificate for `server_name` with `config` (normally
    /// [`tunnel_client_config`]).
    pub fn new(
        gateway_addr: String,
        server_name: ServerName<'static>,
        config: Arc<ClientConfig>,
    ) -> Self {
        Self {
            gateway_addr: gateway_addr.into(),
            server_name,
            tls: tokio_rustls::TlsConnector::from(config),
            connect_timeout: CONNECT_TIMEOUT,
            handshake_timeout: HANDSHAKE_TIMEOUT,
        }
    }

    /// A connector for a session: trusts `ca_cert_pem` (the KMS CA), presents the session
    /// certificate and key, and expects the gateway's certificate to name the host part of
    /// `gateway_addr` (a DNS name or an IP address; IPv6 in brackets, `[::1]:8443`).
    pub fn from_pem(
        ca_cert_pem: &str,
        session_cert_pem: &str,
        session_key: &PrivateKeyPem,
        gateway_addr: String,
    ) -> Result<Self, TlsError> {
        let server_name = server_name_of(&gateway_addr)?;
        let config =
            tunnel_client_config(ca_cert_pem, session_cert_pem, session_key, &[TUNNEL_ALPN])?;
        Ok(Self::new(gateway_addr, server_name, config))
    }

    /// The gateway address this connector dials.
    pub fn gateway_addr(&self) -> &str {
        &self.gateway_addr
    }

    async fn connect_tcp(&self) -> Result<TcpStream, TransportError> {
        let addr = &*self.gateway_addr;
        let tcp = timeout(self.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| {
                TransportError::unreachable(format!(
                    "cannot connect to gateway {addr}: no answer within {:?}",
                    self.connect_timeout
                ))
            })?
            .map_err(|e| {
                TransportError::unreachable(format!("cannot connect to gateway {addr}: {e}"))
            })?;
        // The tunnel carries interactive HTTP/2 frames; Nagle would delay small ones.
        tcp.set_nodelay(true).map_err(|e| {
            TransportError::unreachable(format!("cannot connect to gateway {addr}: {e}"))
        })?;
        Ok(tcp)
    }
}

#[async_trait]
impl GatewayTransport for TlsConnector {
    async fn connect(&self) -> Result<BoxedIo, TransportError> {
        let addr = &*self.gateway_addr;
        let tcp = self.connect_tcp().await?;
        let handshake = self.tls.connect(self.server_name.clone(), tcp);
        let tls = timeout(self.handshake_timeout, handshake)
            .await
            .map_err(|_| {
                TransportError::unreachable(format!(
                    "gateway {addr} did not complete the TLS handshake within {:?}",
                    self.handshake_timeout
                ))
            })?
            .map_err(|e| handshake_error(addr, &e))?;
        // rustls already fails the handshake when the gateway picks a protocol we did not offer;
        // this catches a gateway that negotiated none at all.
        if tls.get_ref().1.alpn_protocol() != Some(TUNNEL_ALPN) {
            return Err(TransportError::refused(format!(
                "{addr}: the gateway does not speak tunnel protocol {}",
                String::from_utf8_lossy(TUNNEL_ALPN)
            )));
        }
        Ok(Box::new(ClientTunnel::new(
            tls,
            Arc::clone(&self.gateway_addr),
        )))
    }
}

impl fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConnector")
            .field("gateway_addr", &self.gateway_addr)
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// The name the gateway's certificate must carry: the host part of `host:port`.
pub(crate) fn server_name_of(gateway_addr: &str) -> Result<ServerName<'static>, TlsError> {
    let invalid = |problem: &'static str| {
        TlsError::InvalidName(InvalidNameReason::GatewayAddress {
            address: gateway_addr.to_owned(),
            problem,
        })
    };
    let (host, port) = gateway_addr
        .rsplit_once(':')
        .ok_or_else(|| invalid("expected host:port"))?;
    port.parse::<u16>().map_err(|_| invalid("bad port"))?;
    let host = match host.strip_prefix('[') {
        Some(bracketed) => bracketed
            .strip_suffix(']')
            .ok_or_else(|| invalid("unclosed '['"))?,
        None if host.contains(':') => return Err(invalid("put an IPv6 address in brackets")),
        None => host,
    };
    ServerName::try_from(host.to_owned())
        .map_err(|_| invalid("the host is neither a DNS name nor an IP address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_name_comes_from_the_host_part() {
        let ip = server_name_of("127.0.0.1:8443").unwrap();
        assert!(matches!(ip, ServerName::IpAddress(_)));
        let dns = server_name_of("gw.example.com:443").unwrap();
        assert_eq!(dns, ServerName::try_from("gw.example.com").unwrap());
        let v6 = server_name_of("[::1]:8443").unwrap();
        assert!(matches!(v6, ServerName::IpAddress(_)));
        for bad in [
            "gw.example.com",
            "gw:port",
            "::1:8443",
            "[::1:8443",
            ":443",
            "bad host:1",
        ] {
            assert!(server_name_of(bad).is_err(), "{bad}");
        }
    }
}
