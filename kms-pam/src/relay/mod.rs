//! Relays: how CLIs reach a gateway that has no inbound port (docs/relay.md).
//!
//! ```text
//! CLI ──TLS (session cert)──▶ relay ◀──TLS (gateway identity cert, dialled OUT by the gateway)── gateway
//!       └──────────── inner mTLS + HTTP/2, CLI ↔ gateway, unchanged and end to end ────────────┘
//! ```
//!
//! - [`serve`] is the relay role. It verifies both sides offline against the KMS CA (a gateway
//!   presents its identity certificate, a CLI its session certificate), keeps a table of the
//!   gateways' tunnels and nothing else, answers each CLI with a [`RelayStatus`] before any
//!   inner byte, and then carries only the inner TLS's ciphertext. It holds no key that opens
//!   a session.
//! - [`dial_relays`] is the gateway's side: one outbound TLS connection per relay, kept with
//!   HTTP/2 keepalives and re-dialled with jittered exponential backoff; on it the relay opens a
//!   `CONNECT` stream per CLI connection, on which the gateway runs the ordinary tunnel
//!   handshake. It yields [`AcceptedTunnel`](crate::transport::AcceptedTunnel)s like the
//!   direct listener, so the rest of the gateway does not know the difference.
//! - [`RelayConnector`] is the CLI's side: a [`GatewayTransport`](crate::transport::GatewayTransport)
//!   that tries the session's relays in order and runs the ordinary tunnel handshake inside.

mod connector;
mod dial;
mod frame;
mod metrics;
mod renewal;
mod server;
mod table;

use std::time::Duration;

use rustls_pki_types::CertificateDer;

pub use connector::RelayConnector;
pub use dial::{dial_relays, DialOptions, RelayLinks, RelayTunnels};
pub use frame::{RelayCode, RelayStatus};
pub use renewal::RelayIdentitySwap;
pub use server::{serve, RelayConfig};

use crate::tls::{PrivateKeyPem, TlsError};

/// ALPN id a CLI offers a relay.
pub const CLIENT_ALPN: &[u8] = b"kms-pam-relay/1";
/// ALPN id a gateway offers a relay for its tunnel.
pub const GATEWAY_ALPN: &[u8] = b"kms-pam-relay-gateway/1";

/// A relay's TLS identity (from `kms-pam relay certificate`) and the KMS CA it verifies
/// gateways and sessions with.
#[derive(Debug)]
#[non_exhaustive]
pub struct RelayTls {
    /// The KMS CA (PEM).
    pub ca_pem: String,
    /// The relay's certificate (PEM), naming it `kms-pam://relay/<name>`.
    pub cert_pem: String,
    /// Its key.
    pub key: PrivateKeyPem,
}

impl RelayTls {
    /// An identity from PEM texts.
    pub fn new(ca_pem: impl Into<String>, cert_pem: impl Into<String>, key: PrivateKeyPem) -> Self {
        Self {
            ca_pem: ca_pem.into(),
            cert_pem: cert_pem.into(),
            key,
        }
    }
}

/// HTTP/2 keepalive on a gateway's tunnel, on both ends: a peer that stops answering pings
/// (black-holed, no RST) is given up within `interval + timeout`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keepalive {
    /// Ping this often.
    pub interval: Duration,
    /// Give up when a ping is not answered within this.
    pub timeout: Duration,
}

impl Default for Keepalive {
    /// 10 s and 10 s: a dead tunnel is noticed within 20 s.
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Why a relay could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// The TLS material is unusable.
    #[error("relay TLS material: {0}")]
    Tls(#[source] TlsError),
}

/// A relay address as given (`host:port`, or `https://host:port`), as `host:port`.
///
/// # Errors
///
/// When it has no port, a path, or another scheme.
pub fn relay_address(url: &str) -> Result<String, String> {
    let bare = url.strip_prefix("https://").unwrap_or(url);
    let bare = bare.strip_suffix('/').unwrap_or(bare);
    if bare.contains("://") || bare.contains('/') {
        return Err(format!(
            "relay {url:?}: expected host:port (or https://host:port)"
        ));
    }
    crate::transport::tls::server_name_of(bare).map_err(|e| format!("relay {url:?}: {e}"))?;
    Ok(bare.to_owned())
}

/// The relay name a certificate (PEM, leaf first) carries as `kms-pam://relay/<name>`.
///
/// # Errors
///
/// When the text holds no certificate, or its leaf is not a relay's.
pub fn certificate_name(cert_pem: &str) -> Result<String, TlsError> {
    let certs = crate::tls::parse_certs(cert_pem)?;
    let leaf = certs.first().ok_or(TlsError::InvalidCertificate(
        crate::tls::InvalidCertificateReason::NoCertificate,
    ))?;
    crate::tls::RelayIdentity::from_cert_der(leaf).map(|relay| relay.name)
}

/// The SHA-256 of a certificate, in hex: how the relay tells the gateway which certificate it
/// authenticated.
pub(crate) fn fingerprint(cert: &CertificateDer<'_>) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.as_ref());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks that a verified server certificate is a relay's, not a gateway's or a session's
/// (they chain to the same CA).
pub(crate) fn check_relay(peer: Option<&[CertificateDer<'_>]>) -> Result<String, String> {
    let leaf = peer
        .and_then(|certs| certs.first())
        .ok_or("it presented no certificate")?;
    crate::tls::RelayIdentity::from_cert_der(leaf)
        .map(|relay| relay.name)
        .map_err(|e| format!("its certificate is not a kms-pam relay's ({e})"))
}

/// Header names and the refusal encoding between relay and gateway.
pub(crate) mod headers {
    use http::HeaderMap;

    use super::{RelayCode, RelayStatus};

    /// The session id of the certificate the relay authenticated.
    pub(crate) const SESSION: &str = "kms-pam-session";
    /// SHA-256 (hex) of that certificate; the gateway requires the same one inside.
    pub(crate) const CLIENT_CERT: &str = "kms-pam-client-cert";
    /// The CLI's address as the relay saw it.
    pub(crate) const CLIENT_ADDR: &str = "kms-pam-client-addr";
    /// A gateway's refusal: `expired`, `revoked` or `forbidden`.
    pub(crate) const REFUSAL: &str = "kms-pam-refusal";
    /// Why, in a sentence (ASCII).
    pub(crate) const REASON: &str = "kms-pam-reason";
    /// The path of the relay's drain notice.
    pub(crate) const DRAIN_PATH: &str = "/kms-pam/drain";

    /// The status a relay sends for a gateway's refusal.
    pub(crate) fn refusal(headers: &HeaderMap) -> RelayStatus {
        let text = |name| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let code = match text(REFUSAL).as_str() {
            "expired" => RelayCode::SessionExpired,
            "revoked" => RelayCode::Revoked,
            _ => RelayCode::Forbidden,
        };
        let reason = text(REASON);
        let reason = if reason.is_empty() {
            "the gateway refused the session".to_owned()
        } else {
            reason
        };
        RelayStatus::new(code, reason)
    }
}

#[cfg(test)]
mod tests;
