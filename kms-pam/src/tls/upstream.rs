//! rustls configuration for the gateway's connection to the Kubernetes API server (docs/operations.md).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use serde::{Deserialize, Serialize};

use super::config::{config_error, crypto_provider, parse_certs, root_store};
use super::upstream_verify::UpstreamVerifier;
use super::TlsError;

/// How the gateway verifies an API server's certificate, per resource.
///
/// Serialized as `{"mode": "system_roots"}`, `{"mode": "ca_bundle", "ca_pem": "-----BEGIN…"}`
/// or `{"mode": "insecure_skip_verify"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", content = "ca_pem", rename_all = "snake_case")]
pub enum UpstreamTls {
    /// Trust the operating system's root certificates.
    #[default]
    SystemRoots,
    /// Trust exactly the certificates of this PEM bundle (`--ca-cert`).
    CaBundle(String),
    /// Accept any certificate (`--ssl-verify=false`). The connection is still encrypted, but
    /// anyone on the path can read and change it.
    InsecureSkipVerify,
}

/// Which HTTP versions to offer the API server through ALPN.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UpstreamAlpn {
    /// `h2` then `http/1.1`, for ordinary requests.
    #[default]
    Http2AndHttp1,
    /// `http/1.1` only, for requests that upgrade the connection (exec, attach, port-forward),
    /// which HTTP/2 cannot carry.
    Http1Only,
}

/// Builds the client configuration for an API server connection. TLS 1.2 and 1.3; the server
/// name comes from the resource URL when connecting (DNS name or IP address). As with kubectl, a
/// server certificate that is itself in the CA bundle is trusted (see `upstream_verify`).
///
/// Loading the system roots reads the OS store, so build this once per resource and reuse it.
pub fn upstream_client_config(
    tls: &UpstreamTls,
    alpn: UpstreamAlpn,
) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(config_error)?;
    let mut config = match tls {
        UpstreamTls::SystemRoots => {
            let verifier = UpstreamVerifier::new(system_roots()?, Vec::new())?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
        }
        UpstreamTls::CaBundle(ca_pem) => {
            let verifier = UpstreamVerifier::new(root_store(ca_pem)?, parse_certs(ca_pem)?)?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
        }
        UpstreamTls::InsecureSkipVerify => {
            tracing::warn!(
                "API server certificate verification is disabled for this resource (ssl-verify=false)"
            );
            let verifier = AcceptAnyServerCert {
                algorithms: crypto_provider().signature_verification_algorithms,
            };
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
        }
    }
    .with_no_client_auth();
    config.alpn_protocols = match alpn {
        UpstreamAlpn::Http2AndHttp1 => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        UpstreamAlpn::Http1Only => vec![b"http/1.1".to_vec()],
    };
    Ok(Arc::new(config))
}

fn system_roots() -> Result<RootCertStore, TlsError> {
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        tracing::debug!(%error, "skipping part of the system certificate store");
    }
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(found.certs);
    if ignored > 0 {
        tracing::debug!(ignored, "unparsable system root certificates ignored");
    }
    if added == 0 {
        return Err(TlsError::NoSystemRoots);
    }
    Ok(roots)
}

/// Accepts any server certificate but still checks that the handshake was signed by the key
/// of the certificate presented, so the session keys are at least bound to that certificate.
#[derive(Debug)]
struct AcceptAnyServerCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
#[path = "upstream_tests.rs"]
mod tests;
