//! The certificate the local proxy serves on loopback (security invariant 5, docs/security.md).
//!
//! kubectl only sends a bearer token over HTTPS, so the proxy needs a certificate kubectl
//! trusts. Each session gets a throwaway CA whose certificate goes into the session kubeconfig
//! as `certificate-authority-data`; the CA key is dropped right after signing the one leaf, so
//! nobody, including this process, can mint another certificate under it.

use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use rustls_pki_types::CertificateDer;

use super::config::{config_error, crypto_provider, parse_certs};
use super::{CertificateAuthority, PrivateKeyPem, TlsError};

/// Names the loopback proxy answers to.
const LOOPBACK_NAMES: [&str; 3] = ["127.0.0.1", "::1", "localhost"];

/// A per-session serving certificate for the loopback proxy.
#[derive(Debug, Clone)]
pub struct LocalServingCert {
    /// The throwaway CA's certificate, PEM, for the kubeconfig's `certificate-authority-data`.
    pub ca_pem: String,
    /// The leaf certificate (for 127.0.0.1, ::1 and localhost), DER.
    pub cert_chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    pub key: PrivateKeyPem,
}

impl LocalServingCert {
    /// Generates a fresh CA and a leaf for the loopback names, both valid for `validity`
    /// (normally the session lifetime).
    pub fn generate(validity: Duration) -> Result<Self, TlsError> {
        let ca = CertificateAuthority::generate("kms-pam local session CA", validity)?;
        let names = LOOPBACK_NAMES.map(str::to_owned);
        let leaf = ca.issue_server_cert(&names, validity)?;
        Ok(Self {
            ca_pem: ca.cert_pem().to_owned(),
            cert_chain: parse_certs(&leaf.cert_pem)?,
            key: leaf.key,
        })
    }

    /// A server configuration serving this certificate, offering `h2` and `http/1.1`, without
    /// client certificates (the proxy authenticates requests by the session's bearer token).
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let mut config = ServerConfig::builder_with_provider(crypto_provider())
            .with_safe_default_protocol_versions()
            .map_err(config_error)?
            .with_no_client_auth()
            .with_single_cert(self.cert_chain.clone(), self.key.to_private_key_der()?)
            .map_err(config_error)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

#[cfg(test)]
mod tests {
    use rustls::{ClientConfig, RootCertStore};

    use super::*;
    use crate::tls::config::root_store;
    use crate::tls::test_support::handshake;

    const HOUR: Duration = Duration::from_secs(3600);

    fn client_trusting(roots: RootCertStore) -> Arc<ClientConfig> {
        let mut config = ClientConfig::builder_with_provider(crypto_provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec()];
        Arc::new(config)
    }

    #[tokio::test]
    async fn serves_loopback_names_to_a_client_trusting_ca_pem() {
        let local = LocalServingCert::generate(HOUR).unwrap();
        let server = local.server_config().unwrap();
        let client = client_trusting(root_store(&local.ca_pem).unwrap());
        for name in LOOPBACK_NAMES {
            let (client_side, server_side) = handshake(&client, &server, name).await;
            let stream = client_side.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
            assert!(server_side.is_ok());
        }
    }

    #[tokio::test]
    async fn other_names_and_other_sessions_are_refused() {
        let local = LocalServingCert::generate(HOUR).unwrap();
        let server = local.server_config().unwrap();
        let client = client_trusting(root_store(&local.ca_pem).unwrap());
        let (wrong_name, _) = handshake(&client, &server, "10.0.0.1").await;
        assert!(wrong_name.is_err());

        let other = LocalServingCert::generate(HOUR).unwrap();
        let other_client = client_trusting(root_store(&other.ca_pem).unwrap());
        let (wrong_ca, _) = handshake(&other_client, &server, "127.0.0.1").await;
        assert!(wrong_ca.is_err());
    }

    #[test]
    fn debug_does_not_print_the_key() {
        let local = LocalServingCert::generate(HOUR).unwrap();
        let debug = format!("{local:?}");
        assert!(debug.contains("[redacted]"));
        assert!(!debug.contains("PRIVATE KEY"));
    }
}
