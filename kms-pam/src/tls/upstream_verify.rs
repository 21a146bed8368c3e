//! Verifying the API server's certificate as kubectl does, and saying in words why it failed.
//!
//! kubectl (Go's `crypto/x509`) trusts a server certificate that is itself one of the roots it
//! was given, whatever its `basicConstraints`: labs often run an API server on what
//! `openssl req -x509` makes, a self-signed certificate marked CA:TRUE, and give that same file
//! as `certificate-authority`. webpki refuses such a certificate as an end entity
//! (`CaUsedAsEndEntity`), so [`UpstreamVerifier`] accepts a certificate whose DER is in the
//! resource's CA bundle, after checking its validity period, server name and extended key usage
//! the way Go does, and hands everything else to webpki.
//!
//! [`explain_upstream_tls_error`] turns a failed handshake into a sentence that names the
//! resource and what to change (docs/operations.md).

use std::error::Error as StdError;
use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, OtherError, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::config::crypto_provider;
use super::{TlsError, UpstreamTls};

/// webpki's verifier, plus: a certificate listed in the CA bundle itself is trusted.
#[derive(Debug)]
pub(super) struct UpstreamVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    /// The bundle's certificates (empty for the system roots).
    listed: Vec<CertificateDer<'static>>,
}

impl UpstreamVerifier {
    pub(super) fn new(
        roots: RootCertStore,
        listed: Vec<CertificateDer<'static>>,
    ) -> Result<Self, TlsError> {
        let webpki =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), crypto_provider())
                .build()
                .map_err(|source| TlsError::Verifier {
                    peer: "API server",
                    source,
                })?;
        Ok(Self { webpki, listed })
    }
}

impl ServerCertVerifier for UpstreamVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self
            .listed
            .iter()
            .any(|c| c.as_ref() == end_entity.as_ref())
        {
            return verify_listed(end_entity, server_name, now);
        }
        self.webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .map_err(|e| match e {
                // No chain can reach a self-signed certificate that is not listed: whatever webpki
                // tripped on first (UnknownIssuer, CaUsedAsEndEntity), that is the fix to name.
                rustls::Error::InvalidCertificate(_) if is_self_signed(end_entity) => {
                    other(UpstreamCertProblem::SelfSigned)
                }
                e => e,
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// A certificate the operator listed: no chain to build, but it must be current, name the
/// server and (if it restricts its use) allow server authentication.
fn verify_listed(
    end_entity: &CertificateDer<'_>,
    server_name: &ServerName<'_>,
    now: UnixTime,
) -> Result<ServerCertVerified, rustls::Error> {
    let (_, cert) = x509_parser::parse_x509_certificate(end_entity.as_ref())
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let validity = cert.validity();
    let time = |t: x509_parser::time::ASN1Time| {
        UnixTime::since_unix_epoch(Duration::from_secs(
            u64::try_from(t.timestamp()).unwrap_or(0),
        ))
    };
    let (not_before, not_after) = (time(validity.not_before), time(validity.not_after));
    if now.as_secs() < not_before.as_secs() {
        return Err(CertificateError::NotValidYetContext {
            time: now,
            not_before,
        }
        .into());
    }
    if now.as_secs() > not_after.as_secs() {
        return Err(CertificateError::ExpiredContext {
            time: now,
            not_after,
        }
        .into());
    }
    if let Ok(Some(eku)) = cert.extended_key_usage() {
        if !eku.value.any && !eku.value.server_auth {
            return Err(CertificateError::InvalidPurpose.into());
        }
    }
    rustls::client::verify_server_name(&ParsedCertificate::try_from(end_entity)?, server_name)?;
    Ok(ServerCertVerified::assertion())
}

fn is_self_signed(der: &CertificateDer<'_>) -> bool {
    x509_parser::parse_x509_certificate(der.as_ref())
        .is_ok_and(|(_, cert)| cert.subject().as_raw() == cert.issuer().as_raw())
}

/// What webpki's errors cannot say.
#[derive(Debug, thiserror::Error)]
enum UpstreamCertProblem {
    #[error("self-signed certificate not in the CA bundle")]
    SelfSigned,
}

fn other(problem: UpstreamCertProblem) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(problem))))
}

/// If `error` (a failed request or connection, with its causes) is a TLS failure with the API
/// server of `resource`, a sentence saying what is wrong and what to change; `None` otherwise.
pub(crate) fn explain_upstream_tls_error(
    error: &(dyn StdError + 'static),
    resource: &str,
    tls: &UpstreamTls,
) -> Option<String> {
    let error = find_rustls_error(error)?;
    let cert = "the API server's certificate";
    let recreate = "recreate the resource with --ca-cert set to the cluster's CA (the \
                    certificate-authority-data of a kubeconfig that works)";
    let sentence = match error {
        rustls::Error::InvalidCertificate(problem) => match problem {
            CertificateError::UnknownIssuer => match tls {
                UpstreamTls::CaBundle(_) => format!(
                    "{cert} is not signed by the CA configured for resource {resource}; {recreate}"
                ),
                _ => format!(
                    "{cert} for resource {resource} is not signed by a CA the gateway's system \
                     trusts; {recreate}"
                ),
            },
            CertificateError::Other(OtherError(inner))
                if inner.downcast_ref::<UpstreamCertProblem>().is_some() =>
            {
                format!(
                    "{cert} for resource {resource} is self-signed and not in the resource's CA \
                     bundle; recreate the resource with --ca-cert set to that certificate (or \
                     the CA that signed the cluster's certificates)"
                )
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => format!(
                "{cert} for resource {resource} has expired{}; renew the API server's serving \
                 certificate, or check the gateway's clock",
                match problem {
                    CertificateError::ExpiredContext { not_after, .. } => {
                        format!(" (valid until {})", when(*not_after))
                    }
                    _ => String::new(),
                }
            ),
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                format!(
                    "{cert} for resource {resource} is not valid yet{}; check the clocks of the \
                     gateway and the API server",
                    match problem {
                        CertificateError::NotValidYetContext { not_before, .. } => {
                            format!(" (valid from {})", when(*not_before))
                        }
                        _ => String::new(),
                    }
                )
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!(
                    "{cert} for resource {resource} does not name the host in the resource's URL \
                 ({problem}); recreate the resource with a URL that uses one of the \
                 certificate's names, or reissue the certificate for that host"
                )
            }
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                format!(
                    "{cert} for resource {resource} is not issued for TLS servers (extended key \
                     usage); reissue it with serverAuth"
                )
            }
            CertificateError::Other(inner)
                if matches!(
                    inner.0.downcast_ref::<webpki::Error>(),
                    Some(webpki::Error::CaUsedAsEndEntity)
                ) =>
            {
                format!(
                    "{cert} for resource {resource} is a CA certificate; kms-pam trusts it only \
                     when it is itself in the resource's CA bundle: recreate the resource with \
                     --ca-cert set to that certificate"
                )
            }
            other => format!(
                "{cert} for resource {resource} was refused ({other}); check the certificate \
                 the API server serves and the resource's --ca-cert"
            ),
        },
        other => format!(
            "TLS with the API server of resource {resource} failed ({other}); check that the \
             resource's URL is the API server's HTTPS address"
        ),
    };
    Some(sentence)
}

/// The rustls error among `error`'s causes. `io::Error` hides the error it wraps from
/// `source()` (it returns that error's own source), so it is unwrapped by hand.
fn find_rustls_error<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    let mut next = Some(error);
    while let Some(current) = next {
        if let Some(found) = current.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        next = match current
            .downcast_ref::<io::Error>()
            .and_then(io::Error::get_ref)
        {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => current.source(),
        };
    }
    None
}

fn when(t: UnixTime) -> String {
    crate::time::format_rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(t.as_secs()))
}

#[cfg(test)]
#[path = "upstream_verify_tests.rs"]
mod tests;
