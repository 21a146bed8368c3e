//! Key generation on the requesting side: the private key stays where it is made and only a
//! certificate signing request travels to the KMS (security invariant 3, docs/security.md).

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};

use super::{GenerateReason, PrivateKeyPem, TlsError};

/// The private key of a session certificate, generated on the client.
#[derive(Debug)]
pub struct SessionKey {
    key: PrivateKeyPem,
}

impl SessionKey {
    /// Generates an ECDSA P-256 key and a CSR for it. Send the CSR to the KMS; keep the key.
    pub fn generate() -> Result<(Self, String), TlsError> {
        let (key, csr_pem) = generate_csr("kms-pam session")?;
        Ok((Self { key }, csr_pem))
    }

    /// The private key, for the tunnel's client configuration.
    pub fn key_pem(&self) -> &PrivateKeyPem {
        &self.key
    }
}

/// Generates an ECDSA P-256 key and a CSR for it (PEM), e.g. for gateway enrollment.
///
/// `common_name` is informative only: the CA ignores the CSR's subject and decides the identity
/// itself.
pub fn generate_csr(common_name: &str) -> Result<(PrivateKeyPem, String), TlsError> {
    let key = KeyPair::generate().map_err(|e| TlsError::Generate(GenerateReason::Rcgen(e)))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    let csr = params
        .serialize_request(&key)
        .and_then(|csr| csr.pem())
        .map_err(|e| TlsError::Generate(GenerateReason::Rcgen(e)))?;
    Ok((PrivateKeyPem::from_key_pair(&key), csr))
}

#[cfg(test)]
mod tests {
    use rcgen::PublicKeyData;

    use super::*;

    #[test]
    fn csr_carries_the_public_key_of_the_kept_key() {
        let (key, csr_pem) = SessionKey::generate().unwrap();
        let csr = rcgen::CertificateSigningRequestParams::from_pem(&csr_pem).unwrap();
        let kept = key.key_pem().to_key_pair().unwrap();
        assert_eq!(csr.public_key.der_bytes(), kept.public_key_raw());
        assert_eq!(kept.algorithm(), &rcgen::PKCS_ECDSA_P256_SHA256);
        assert!(!csr_pem.contains("PRIVATE KEY"));
    }

    #[test]
    fn every_call_makes_a_new_key() {
        let (a, _) = generate_csr("gw").unwrap();
        let (b, _) = generate_csr("gw").unwrap();
        assert_ne!(a.expose_secret(), b.expose_secret());
    }
}
