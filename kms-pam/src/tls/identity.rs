//! Who a certificate speaks for: the `kms-pam://` URI SANs written by the CA and read back here.
//!
//! KMS writes identities as URI subject alternative names rather than in the subject, because
//! SANs are typed and unambiguous: `kms-pam://session/<id>` and `kms-pam://gateway/<name>`, each
//! component percent-encoded so any name round-trips and none can smuggle a `/`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::time::ASN1Time;

use super::{InvalidCertificateReason, InvalidNameReason, TlsError};

/// Prefix of the URI SAN naming a session: `kms-pam://session/<id>`.
pub const SESSION_URI_PREFIX: &str = "kms-pam://session/";
/// Prefix of the URI SAN naming a gateway: `kms-pam://gateway/<name>`.
pub const GATEWAY_URI_PREFIX: &str = "kms-pam://gateway/";
/// Prefix of the URI SAN naming a relay: `kms-pam://relay/<name>`.
pub const RELAY_URI_PREFIX: &str = "kms-pam://relay/";

/// RFC 3986 unreserved characters stay as they are; everything else is escaped.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Builds `kms-pam://session/<id>`.
pub(crate) fn session_uri(session_id: &str) -> Result<String, TlsError> {
    identity_uri(SESSION_URI_PREFIX, "session id", session_id)
}

/// Builds `kms-pam://gateway/<name>`.
pub(crate) fn gateway_uri(gateway: &str) -> Result<String, TlsError> {
    identity_uri(GATEWAY_URI_PREFIX, "gateway name", gateway)
}

/// Builds `kms-pam://relay/<name>`.
pub(crate) fn relay_uri(relay: &str) -> Result<String, TlsError> {
    identity_uri(RELAY_URI_PREFIX, "relay name", relay)
}

fn identity_uri(prefix: &str, what: &'static str, value: &str) -> Result<String, TlsError> {
    if value.is_empty() {
        return Err(TlsError::InvalidName(InvalidNameReason::Empty { what }));
    }
    Ok(format!("{prefix}{}", utf8_percent_encode(value, COMPONENT)))
}

/// The session a client certificate was issued for, as read back from the certificate.
///
/// The gateway builds this from the certificate rustls has already verified against the KMS
/// CA; it then asks KMS whether `session_id` is active for itself (security invariant 3, docs/security.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionIdentity {
    /// The session id (from `kms-pam://session/<id>`).
    pub session_id: String,
    /// The gateway the session is bound to (from `kms-pam://gateway/<name>`).
    pub gateway: String,
    /// The user who owns the session (the subject common name).
    pub user: String,
    /// Start of the certificate's validity.
    pub not_before: SystemTime,
    /// End of the certificate's validity, which is the session's expiry.
    pub not_after: SystemTime,
}

impl SessionIdentity {
    /// Reads the identity from a DER certificate.
    ///
    /// Parsing only: it does not verify the signature or the validity period, which the TLS
    /// handshake has done. Fails unless the certificate carries exactly one session URI, exactly
    /// one gateway URI and exactly one common name.
    pub fn from_cert_der(der: &[u8]) -> Result<Self, TlsError> {
        let cert = parse_cert(der)?;
        let uris = IdentityUris::read(&cert)?;
        let session_id = exactly_one(uris.sessions, "session URI")?;
        let gateway = exactly_one(uris.gateways, "gateway URI")?;
        let user = exactly_one(common_names(&cert)?, "subject common name")?;
        let validity = cert.validity();
        Ok(Self {
            session_id,
            gateway,
            user,
            not_before: to_system_time(validity.not_before)?,
            not_after: to_system_time(validity.not_after)?,
        })
    }
}

/// The gateway a server certificate was enrolled for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayIdentity {
    /// The gateway name (from `kms-pam://gateway/<name>`).
    pub name: String,
}

impl GatewayIdentity {
    /// Reads the gateway name from a DER certificate; a session certificate is refused even
    /// though it also names a gateway.
    pub fn from_cert_der(der: &[u8]) -> Result<Self, TlsError> {
        let cert = parse_cert(der)?;
        let uris = IdentityUris::read(&cert)?;
        if !uris.sessions.is_empty() {
            return Err(TlsError::InvalidCertificate(
                InvalidCertificateReason::SessionNotGateway,
            ));
        }
        let name = exactly_one(uris.gateways, "gateway URI")?;
        Ok(Self { name })
    }
}

/// The relay a server certificate was issued for.
///
/// The CLI and the gateway check it after the handshake: the relay's certificate chains to the
/// KMS CA like a gateway's, and only this URI tells the two apart, so a gateway (or a session)
/// certificate can never pose as a relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayIdentity {
    /// The relay name (from `kms-pam://relay/<name>`).
    pub name: String,
}

impl RelayIdentity {
    /// Reads the relay name from a DER certificate; a certificate that also names a session or
    /// a gateway is refused.
    pub fn from_cert_der(der: &[u8]) -> Result<Self, TlsError> {
        let cert = parse_cert(der)?;
        let uris = IdentityUris::read(&cert)?;
        if !uris.sessions.is_empty() || !uris.gateways.is_empty() {
            return Err(TlsError::InvalidCertificate(
                InvalidCertificateReason::Missing { what: "relay URI" },
            ));
        }
        let name = exactly_one(uris.relays, "relay URI")?;
        Ok(Self { name })
    }
}

/// The decoded `kms-pam://` URIs of one certificate, by kind.
struct IdentityUris {
    sessions: Vec<String>,
    gateways: Vec<String>,
    relays: Vec<String>,
}

impl IdentityUris {
    fn read(cert: &X509Certificate<'_>) -> Result<Self, TlsError> {
        let san = cert.subject_alternative_name().map_err(|e| {
            TlsError::InvalidCertificate(InvalidCertificateReason::SubjectAltName(e))
        })?;
        let mut uris = Self {
            sessions: Vec::new(),
            gateways: Vec::new(),
            relays: Vec::new(),
        };
        let names = san.iter().flat_map(|ext| ext.value.general_names.iter());
        for name in names {
            let GeneralName::URI(uri) = name else {
                continue;
            };
            if let Some(id) = uri.strip_prefix(SESSION_URI_PREFIX) {
                uris.sessions.push(decode_component(id)?);
            } else if let Some(gateway) = uri.strip_prefix(GATEWAY_URI_PREFIX) {
                uris.gateways.push(decode_component(gateway)?);
            } else if let Some(relay) = uri.strip_prefix(RELAY_URI_PREFIX) {
                uris.relays.push(decode_component(relay)?);
            }
        }
        Ok(uris)
    }
}

fn parse_cert(der: &[u8]) -> Result<X509Certificate<'_>, TlsError> {
    match x509_parser::parse_x509_certificate(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err(TlsError::InvalidCertificate(
            InvalidCertificateReason::TrailingData,
        )),
        Err(e) => Err(TlsError::InvalidCertificate(
            InvalidCertificateReason::Parse(e),
        )),
    }
}

fn decode_component(encoded: &str) -> Result<String, TlsError> {
    // The CA escapes every '/', so a raw one (or nothing at all) was not written by it.
    if encoded.is_empty() || encoded.contains('/') {
        return Err(TlsError::InvalidCertificate(
            InvalidCertificateReason::MalformedUriComponent {
                component: encoded.to_owned(),
            },
        ));
    }
    percent_decode_str(encoded)
        .decode_utf8()
        .map(|decoded| decoded.into_owned())
        .map_err(|e| TlsError::InvalidCertificate(InvalidCertificateReason::UriNotUtf8(e)))
}

fn common_names(cert: &X509Certificate<'_>) -> Result<Vec<String>, TlsError> {
    cert.subject()
        .iter_common_name()
        .map(|cn| {
            cn.as_str().map(str::to_owned).map_err(|_| {
                TlsError::InvalidCertificate(InvalidCertificateReason::CommonNameNotString)
            })
        })
        .collect()
}

fn exactly_one(mut values: Vec<String>, what: &'static str) -> Result<String, TlsError> {
    match (values.pop(), values.is_empty()) {
        (Some(value), true) => Ok(value),
        (None, _) => Err(TlsError::InvalidCertificate(
            InvalidCertificateReason::Missing { what },
        )),
        (Some(_), false) => Err(TlsError::InvalidCertificate(
            InvalidCertificateReason::Several { what },
        )),
    }
}

fn to_system_time(time: ASN1Time) -> Result<SystemTime, TlsError> {
    u64::try_from(time.timestamp())
        .ok()
        .and_then(|secs| UNIX_EPOCH.checked_add(Duration::from_secs(secs)))
        .ok_or(TlsError::InvalidCertificate(
            InvalidCertificateReason::ValidityOutOfRange,
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_with(uris: &[&str], cn: &str) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        for uri in uris {
            let uri = (*uri).to_owned().try_into().unwrap();
            params.subject_alt_names.push(rcgen::SanType::URI(uri));
        }
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn names_round_trip_through_uris() {
        let gateway = gateway_uri("eu west/1 ü").unwrap();
        assert_eq!(gateway, "kms-pam://gateway/eu%20west%2F1%20%C3%BC");
        let session = session_uri("3f2a-b").unwrap();
        let der = cert_with(&[&session, &gateway, "https://example.com/"], "alice");
        let identity = SessionIdentity::from_cert_der(&der).unwrap();
        assert_eq!(identity.session_id, "3f2a-b");
        assert_eq!(identity.gateway, "eu west/1 ü");
        assert_eq!(identity.user, "alice");
    }

    #[test]
    fn empty_names_are_refused() {
        assert!(matches!(session_uri(""), Err(TlsError::InvalidName(_))));
        assert!(matches!(gateway_uri(""), Err(TlsError::InvalidName(_))));
    }

    #[test]
    fn session_identity_needs_exactly_one_session_uri() {
        let gw = "kms-pam://gateway/gw";
        let none = cert_with(&[gw], "alice");
        let two = cert_with(&["kms-pam://session/a", "kms-pam://session/b", gw], "alice");
        for der in [none, two] {
            let err = SessionIdentity::from_cert_der(&der).unwrap_err();
            assert!(matches!(err, TlsError::InvalidCertificate(_)), "{err}");
        }
    }

    #[test]
    fn raw_slash_in_a_component_is_refused() {
        let der = cert_with(&["kms-pam://session/a/b", "kms-pam://gateway/gw"], "alice");
        assert!(SessionIdentity::from_cert_der(&der).is_err());
    }

    #[test]
    fn gateway_identity_refuses_session_certs() {
        let gateway = cert_with(&["kms-pam://gateway/gw"], "gw");
        assert_eq!(GatewayIdentity::from_cert_der(&gateway).unwrap().name, "gw");
        let session = cert_with(&["kms-pam://session/s", "kms-pam://gateway/gw"], "u");
        assert!(GatewayIdentity::from_cert_der(&session).is_err());
    }

    #[test]
    fn relay_identity_is_only_a_relay_certificate() {
        let relay = cert_with(&["kms-pam://relay/edge%201"], "edge");
        assert_eq!(RelayIdentity::from_cert_der(&relay).unwrap().name, "edge 1");
        let gateway = cert_with(&["kms-pam://gateway/gw"], "gw");
        let session = cert_with(&["kms-pam://session/s", "kms-pam://gateway/gw"], "u");
        let both = cert_with(&["kms-pam://relay/r", "kms-pam://gateway/gw"], "r");
        for der in [gateway, session, both] {
            assert!(RelayIdentity::from_cert_der(&der).is_err());
        }
        let relay = cert_with(&["kms-pam://relay/r"], "r");
        assert!(
            GatewayIdentity::from_cert_der(&relay).is_err(),
            "no gateway URI"
        );
    }

    #[test]
    fn garbage_and_trailing_bytes_are_refused() {
        assert!(SessionIdentity::from_cert_der(b"nope").is_err());
        let mut der = cert_with(&["kms-pam://session/s", "kms-pam://gateway/gw"], "u");
        der.push(0);
        assert!(SessionIdentity::from_cert_der(&der).is_err());
    }
}
