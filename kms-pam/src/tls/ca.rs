//! The KMS certificate authority: it signs gateway certificates at enrollment and one client
//! certificate per session (security invariant 3, docs/security.md).
//!
//! Every certificate gets a random serial (rcgen would otherwise derive it from the public key,
//! and a client reusing a key across sessions would get two certificates with one serial).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PublicKeyData,
    SanType, SerialNumber,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

use super::identity::{gateway_uri, relay_uri, session_uri};
use super::{
    GenerateReason, InvalidCertificateReason, InvalidKeyReason, InvalidNameReason, PrivateKeyPem,
    TlsError,
};

/// How far back CA and gateway certificates are dated, so a host whose clock runs a little
/// behind the KMS still accepts them. Session certificates are not backdated: their validity
/// is exactly the session's.
const CLOCK_SKEW_ALLOWANCE: Duration = Duration::from_secs(5 * 60);

/// What KMS puts into a session certificate. The CSR contributes only its public key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionCertSpec {
    /// The session id, written as `kms-pam://session/<id>`.
    pub session_id: String,
    /// The gateway the session is bound to, written as `kms-pam://gateway/<name>`.
    pub gateway: String,
    /// The user, written as the subject common name.
    pub user: String,
    /// Session start (truncated to whole seconds, as X.509 times are).
    pub not_before: SystemTime,
    /// Session expiry (truncated to whole seconds, as X.509 times are).
    pub not_after: SystemTime,
}

impl SessionCertSpec {
    /// A certificate for session `session_id` of `user`, bound to `gateway`, valid from
    /// `not_before` to `not_after`.
    pub fn new(
        session_id: impl Into<String>,
        gateway: impl Into<String>,
        user: impl Into<String>,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Self {
        Self {
            session_id: session_id.into(),
            gateway: gateway.into(),
            user: user.into(),
            not_before,
            not_after,
        }
    }
}

/// A certificate issued together with a key generated for it.
#[derive(Debug, Clone)]
pub struct IssuedCert {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Its private key.
    pub key: PrivateKeyPem,
}

/// A certificate authority holding its signing key (ECDSA P-256).
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    key_pem: PrivateKeyPem,
}

impl CertificateAuthority {
    /// Creates a self-signed CA valid from now (minus a small clock-skew allowance) for `validity`.
    pub fn generate(common_name: &str, validity: Duration) -> Result<Self, TlsError> {
        let key = KeyPair::generate().map_err(generate_error)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name_dn(common_name);
        // Path length 0: this CA signs leaves only, never another CA.
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.serial_number = Some(random_serial());
        set_validity_from_now(&mut params, validity)?;
        let cert = params.self_signed(&key).map_err(generate_error)?;
        Ok(Self {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            key_pem: PrivateKeyPem::from_key_pair(&key),
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads a CA from its certificate and private key, checking that the certificate is a CA
    /// certificate and that the key belongs to it.
    pub fn from_pem(cert_pem: &str, key_pem: PrivateKeyPem) -> Result<Self, TlsError> {
        let cert_der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| TlsError::InvalidCertificate(InvalidCertificateReason::CaPem(e)))?;
        let key = key_pem.to_key_pair()?;
        check_ca_matches_key(&cert_der, &key)?;
        let issuer = Issuer::from_ca_cert_der(&cert_der, key)
            .map_err(|e| TlsError::InvalidCertificate(InvalidCertificateReason::CaIssuer(e)))?;
        Ok(Self {
            issuer,
            cert_pem: cert_pem.to_owned(),
            cert_der,
            key_pem,
        })
    }

    /// The CA certificate, PEM: what gateways and clients trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The CA's private key, to be stored by the KMS (file mode 0600).
    pub fn key_pem(&self) -> &PrivateKeyPem {
        &self.key_pem
    }

    /// Issues a TLS server certificate for `names` (DNS names or IP literals) with a key made
    /// here. For gateways started next to the KMS (`kms-pam dev`) and for tests; enrolled
    /// gateways keep their own key and use [`Self::sign_gateway_csr`].
    pub fn issue_server_cert(
        &self,
        names: &[String],
        validity: Duration,
    ) -> Result<IssuedCert, TlsError> {
        let key = KeyPair::generate().map_err(generate_error)?;
        let params = server_params(names, validity)?;
        let cert_pem = self.sign(params, &key)?;
        Ok(IssuedCert {
            cert_pem,
            key: PrivateKeyPem::from_key_pair(&key),
        })
    }

    /// Signs a gateway's enrollment CSR: a server certificate for `names` (DNS names or IP
    /// literals) naming the gateway as `kms-pam://gateway/<gateway_name>`. Only the CSR's public
    /// key is used; its self-signature must verify. Returns the certificate PEM.
    pub fn sign_gateway_csr(
        &self,
        csr_pem: &str,
        gateway_name: &str,
        names: &[String],
        validity: Duration,
    ) -> Result<String, TlsError> {
        let csr = parse_csr(csr_pem)?;
        let mut params = server_params(names, validity)?;
        params
            .subject_alt_names
            .push(uri_san(gateway_uri(gateway_name)?)?);
        params.distinguished_name = common_name_dn(gateway_name);
        // The same identity is the client certificate a gateway dials out to a relay with.
        params
            .extended_key_usages
            .push(ExtendedKeyUsagePurpose::ClientAuth);
        self.sign(params, &csr.public_key)
    }

    /// Signs a relay's CSR: a server certificate for `names` (DNS names or IP literals) naming
    /// the relay as `kms-pam://relay/<relay_name>`, which CLIs and gateways require of a relay.
    /// Only the CSR's public key is used; its self-signature must verify. Returns the PEM.
    pub fn sign_relay_csr(
        &self,
        csr_pem: &str,
        relay_name: &str,
        names: &[String],
        validity: Duration,
    ) -> Result<String, TlsError> {
        let csr = parse_csr(csr_pem)?;
        let mut params = server_params(names, validity)?;
        params
            .subject_alt_names
            .push(uri_san(relay_uri(relay_name)?)?);
        params.distinguished_name = common_name_dn(relay_name);
        self.sign(params, &csr.public_key)
    }

    /// Signs a session CSR: a client certificate whose validity is exactly the session's, naming
    /// the session and its gateway in URI SANs and the user as common name. The subject and
    /// extensions the CSR asks for are ignored (KMS decides the identity); only its public key
    /// is used, after its self-signature has been verified. Returns the certificate PEM.
    pub fn sign_session_csr(
        &self,
        csr_pem: &str,
        spec: &SessionCertSpec,
    ) -> Result<String, TlsError> {
        let csr = parse_csr(csr_pem)?;
        if spec.user.is_empty() {
            return Err(TlsError::InvalidName(InvalidNameReason::Empty {
                what: "user name",
            }));
        }
        let mut params = leaf_params(ExtendedKeyUsagePurpose::ClientAuth);
        params.distinguished_name = common_name_dn(&spec.user);
        params.subject_alt_names = vec![
            uri_san(session_uri(&spec.session_id)?)?,
            uri_san(gateway_uri(&spec.gateway)?)?,
        ];
        set_validity(&mut params, spec.not_before, spec.not_after)?;
        self.sign(params, &csr.public_key)
    }

    fn sign(
        &self,
        params: CertificateParams,
        key: &impl PublicKeyData,
    ) -> Result<String, TlsError> {
        let cert = params
            .signed_by(key, &self.issuer)
            .map_err(generate_error)?;
        Ok(cert.pem())
    }
}

impl fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("key_pem", &self.key_pem)
            .finish_non_exhaustive()
    }
}

/// Parses a CSR and verifies its self-signature (rcgen does so when built with `ring`), which
/// proves the requester holds the private key.
fn parse_csr(csr_pem: &str) -> Result<CertificateSigningRequestParams, TlsError> {
    CertificateSigningRequestParams::from_pem(csr_pem).map_err(TlsError::InvalidCsr)
}

fn check_ca_matches_key(cert_der: &CertificateDer<'_>, key: &KeyPair) -> Result<(), TlsError> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| TlsError::InvalidCertificate(InvalidCertificateReason::CaParse(e)))?;
    let is_ca = cert
        .basic_constraints()
        .ok()
        .flatten()
        .is_some_and(|bc| bc.value.ca);
    if !is_ca {
        return Err(TlsError::InvalidCertificate(
            InvalidCertificateReason::NotCa,
        ));
    }
    if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
        return Err(TlsError::InvalidKey(InvalidKeyReason::NotTheCaKey));
    }
    Ok(())
}

fn leaf_params(usage: ExtendedKeyUsagePurpose) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.serial_number = Some(random_serial());
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    params
}

fn server_params(names: &[String], validity: Duration) -> Result<CertificateParams, TlsError> {
    if names.is_empty() {
        return Err(TlsError::InvalidName(InvalidNameReason::NoServerName));
    }
    let mut params = leaf_params(ExtendedKeyUsagePurpose::ServerAuth);
    params.distinguished_name = common_name_dn(&names[0]);
    params.subject_alt_names = names
        .iter()
        .map(|name| server_name_san(name))
        .collect::<Result<_, _>>()?;
    set_validity_from_now(&mut params, validity)?;
    Ok(params)
}

/// A DNS name or IP literal as a SAN, validated with the same rules rustls applies when
/// connecting, so a certificate is never issued for a name no client could ask for.
fn server_name_san(name: &str) -> Result<SanType, TlsError> {
    let invalid = || {
        TlsError::InvalidName(InvalidNameReason::NotAServerName {
            name: name.to_owned(),
        })
    };
    match ServerName::try_from(name).map_err(|_| invalid())? {
        ServerName::IpAddress(ip) => Ok(SanType::IpAddress(ip.into())),
        ServerName::DnsName(dns) => {
            let ia5 = dns.as_ref().to_owned().try_into().map_err(|_| invalid())?;
            Ok(SanType::DnsName(ia5))
        }
        _ => Err(invalid()),
    }
}

fn uri_san(uri: String) -> Result<SanType, TlsError> {
    let ia5 = uri
        .try_into()
        .map_err(|e| TlsError::InvalidName(InvalidNameReason::IdentityUri(e)))?;
    Ok(SanType::URI(ia5))
}

fn common_name_dn(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

fn set_validity_from_now(
    params: &mut CertificateParams,
    validity: Duration,
) -> Result<(), TlsError> {
    let now = SystemTime::now();
    let not_before = now.checked_sub(CLOCK_SKEW_ALLOWANCE).unwrap_or(now);
    let not_after = now.checked_add(validity).ok_or_else(out_of_range)?;
    set_validity(params, not_before, not_after)
}

/// Sets the validity period after checking it is non-empty and expressible in X.509, since
/// converting an out-of-range time for rcgen would panic.
fn set_validity(
    params: &mut CertificateParams,
    not_before: SystemTime,
    not_after: SystemTime,
) -> Result<(), TlsError> {
    /// 9999-12-31T23:59:59Z, the last instant a four-digit GeneralizedTime can name.
    const LATEST: Duration = Duration::from_secs(253_402_300_799);
    if not_after <= not_before {
        return Err(TlsError::Generate(GenerateReason::ValidityReversed));
    }
    if not_before < UNIX_EPOCH || not_after > UNIX_EPOCH + LATEST {
        return Err(out_of_range());
    }
    params.not_before = not_before.into();
    params.not_after = not_after.into();
    Ok(())
}

fn out_of_range() -> TlsError {
    TlsError::Generate(GenerateReason::ValidityOutOfRange)
}

/// 122 random bits (UUID v4 draws them from the OS generator); rcgen encodes them as a positive
/// integer.
fn random_serial() -> SerialNumber {
    SerialNumber::from_slice(uuid::Uuid::new_v4().as_bytes())
}

fn generate_error(e: rcgen::Error) -> TlsError {
    TlsError::Generate(GenerateReason::Rcgen(e))
}

#[cfg(test)]
#[path = "ca_tests.rs"]
mod tests;
