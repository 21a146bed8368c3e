//! rustls configurations for the mTLS tunnel between the CLI and a gateway (security invariant 3, docs/security.md).
//!
//! Both ends trust only the KMS CA. The gateway requires a client certificate, which rustls'
//! `WebPkiClientVerifier` checks for chain, validity period and the clientAuth usage; the CLI
//! checks the gateway's certificate the same way for serverAuth and the gateway's address.

use std::sync::{Arc, LazyLock};

use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use super::{InvalidCertificateReason, PrivateKeyPem, TlsError};

/// ALPN protocol id of the tunnel.
///
/// The protocol version lives in this id: a gateway that speaks a new tunnel protocol offers
/// `kms-pam/2` next to `kms-pam/1` for as long as old clients exist, and a peer with no common
/// id fails the handshake with `no_application_protocol` instead of misreading the stream.
pub const TUNNEL_ALPN: &[u8] = b"kms-pam/1";

static RING: LazyLock<Arc<CryptoProvider>> =
    LazyLock::new(|| Arc::new(rustls::crypto::ring::default_provider()));

/// The crypto provider (`ring`) every rustls configuration of this crate is built with.
///
/// Passed explicitly to each builder rather than installed as the process default, so an
/// application embedding the library keeps control of its own default. Use it for any other
/// rustls configuration next to these, so the process runs one crypto stack.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::clone(&RING)
}

/// Gateway side of the tunnel: TLS 1.3 only, client certificate required and verified against
/// the KMS CA (`ca_cert_pem`). Offers `alpn` (normally `[TUNNEL_ALPN]`).
///
/// The verifier only proves the certificate came from the KMS CA and is within its validity;
/// the caller still reads the [`SessionIdentity`](super::SessionIdentity) and asks the KMS that
/// the session is active for this gateway.
pub fn tunnel_server_config(
    ca_cert_pem: &str,
    server_cert_pem: &str,
    server_key: &PrivateKeyPem,
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>, TlsError> {
    let roots = Arc::new(root_store(ca_cert_pem)?);
    let verifier = WebPkiClientVerifier::builder_with_provider(roots, crypto_provider())
        .build()
        .map_err(|source| TlsError::Verifier {
            peer: "client",
            source,
        })?;
    let mut config = ServerConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(config_error)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            parse_certs(server_cert_pem)?,
            server_key.to_private_key_der()?,
        )
        .map_err(config_error)?;
    // A resumed session skips certificate verification, so it could outlive the session
    // certificate; every tunnel does a full handshake instead.
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    config.alpn_protocols = alpn_list(alpn);
    Ok(Arc::new(config))
}

/// CLI side of the tunnel: TLS 1.3 only, the gateway verified against the KMS CA, the session
/// certificate presented. Offers `alpn` (normally `[TUNNEL_ALPN]`).
pub fn tunnel_client_config(
    ca_cert_pem: &str,
    client_cert_pem: &str,
    client_key: &PrivateKeyPem,
    alpn: &[&[u8]],
) -> Result<Arc<ClientConfig>, TlsError> {
    let mut config = ClientConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(config_error)?
        .with_root_certificates(root_store(ca_cert_pem)?)
        .with_client_auth_cert(
            parse_certs(client_cert_pem)?,
            client_key.to_private_key_der()?,
        )
        .map_err(config_error)?;
    config.resumption = Resumption::disabled();
    config.alpn_protocols = alpn_list(alpn);
    Ok(Arc::new(config))
}

/// Every certificate in a PEM text; at least one.
pub(crate) fn parse_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::InvalidCertificate(InvalidCertificateReason::Pem(e)))?;
    if certs.is_empty() {
        return Err(TlsError::InvalidCertificate(
            InvalidCertificateReason::NoCertificate,
        ));
    }
    Ok(certs)
}

/// A root store holding every certificate of `ca_pem`; fails if any is unusable as a root.
pub(crate) fn root_store(ca_pem: &str) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in parse_certs(ca_pem)? {
        roots
            .add(cert)
            .map_err(|e| TlsError::InvalidCertificate(InvalidCertificateReason::Root(e)))?;
    }
    Ok(roots)
}

pub(crate) fn alpn_list(alpn: &[&[u8]]) -> Vec<Vec<u8>> {
    alpn.iter().map(|id| id.to_vec()).collect()
}

pub(crate) fn config_error(e: rustls::Error) -> TlsError {
    TlsError::Rustls(e)
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
