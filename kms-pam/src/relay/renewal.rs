//! A gateway's renewed identity put into service while it runs: the TLS both sides of its relay
//! tunnels use, swapped whole, and every tunnel dialled again (make-before-break).

use std::sync::Arc;

use std::sync::RwLock;

use tokio::sync::watch;

use super::GATEWAY_ALPN;
use crate::tls::{
    tunnel_client_config, tunnel_server_config, PrivateKeyPem, TlsError, TUNNEL_ALPN,
};

/// The TLS of a gateway identity: towards relays, and towards CLIs inside relayed streams.
fn identity(
    ca_pem: &str,
    cert_pem: &str,
    key: &PrivateKeyPem,
) -> Result<(tokio_rustls::TlsConnector, tokio_rustls::TlsAcceptor), TlsError> {
    let outer = tunnel_client_config(ca_pem, cert_pem, key, &[GATEWAY_ALPN])?;
    let inner = tunnel_server_config(ca_pem, cert_pem, key, &[TUNNEL_ALPN])?;
    Ok((
        tokio_rustls::TlsConnector::from(outer),
        tokio_rustls::TlsAcceptor::from(inner),
    ))
}

/// The identity a gateway's relay tunnels use, shared by the dialer and [`RelayIdentitySwap`].
pub(super) struct IdentityCell {
    tls: RwLock<(tokio_rustls::TlsConnector, tokio_rustls::TlsAcceptor)>,
    /// Bumped at each renewal: every tunnel is dialled again with the new identity.
    pub(super) renewed: watch::Sender<u64>,
}

impl IdentityCell {
    pub(super) fn new(ca_pem: &str, cert_pem: &str, key: &PrivateKeyPem) -> Result<Self, TlsError> {
        Ok(Self {
            tls: RwLock::new(identity(ca_pem, cert_pem, key)?),
            renewed: watch::Sender::new(0),
        })
    }

    /// The identity in service now: towards relays, and towards CLIs inside relayed streams.
    pub(super) fn tls(&self) -> (tokio_rustls::TlsConnector, tokio_rustls::TlsAcceptor) {
        self.tls.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Puts a renewed identity into service: [`RelayTunnels::identity`](super::RelayTunnels::identity).
#[derive(Clone)]
pub struct RelayIdentitySwap {
    cell: Arc<IdentityCell>,
}

impl RelayIdentitySwap {
    pub(super) fn new(cell: Arc<IdentityCell>) -> Self {
        Self { cell }
    }

    /// Uses this certificate and key from now on, make-before-break: every relay is dialled
    /// again with it, new streams go to the new tunnels, and the old tunnels close once the
    /// streams on them are done.
    ///
    /// # Errors
    ///
    /// When the material is unusable; the old identity then stays in service.
    pub fn replace(
        &self,
        ca_pem: &str,
        cert_pem: &str,
        key: &PrivateKeyPem,
    ) -> Result<(), TlsError> {
        let fresh = identity(ca_pem, cert_pem, key)?;
        *self.cell.tls.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        self.cell.renewed.send_modify(|generation| *generation += 1);
        Ok(())
    }
}

impl std::fmt::Debug for RelayIdentitySwap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayIdentitySwap").finish_non_exhaustive()
    }
}
