//! A PEM-encoded private key that does not leak through logs or freed memory.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;

use super::{InvalidKeyReason, TlsError};
use crate::secret::Secret;

/// A PEM-encoded private key (PKCS#8).
///
/// `Debug` and `Display` print `[redacted]`, and the buffer is zeroized when dropped, so the key
/// can sit in structs that get logged. Read it only through [`PrivateKeyPem::expose_secret`] when
/// it must be written to a file the user owns.
#[derive(Clone)]
pub struct PrivateKeyPem(Secret);

impl PrivateKeyPem {
    /// Wraps a PEM string; the caller gives up its copy.
    pub fn new(pem: String) -> Self {
        Self(Secret::new(pem))
    }

    /// The PEM text. Every call site is a place where the key leaves this type: keep them few.
    pub fn expose_secret(&self) -> &str {
        self.0.expose()
    }

    /// Parses the key for rustls.
    pub fn to_private_key_der(&self) -> Result<PrivateKeyDer<'static>, TlsError> {
        PrivateKeyDer::from_pem_slice(self.0.expose().as_bytes())
            .map_err(|e| TlsError::InvalidKey(InvalidKeyReason::Pem(e)))
    }

    /// Parses the key for signing with rcgen.
    pub(crate) fn to_key_pair(&self) -> Result<rcgen::KeyPair, TlsError> {
        rcgen::KeyPair::from_pem(self.0.expose())
            .map_err(|e| TlsError::InvalidKey(InvalidKeyReason::KeyPair(e)))
    }

    /// Serializes an rcgen key pair, keeping only the zeroizing copy.
    pub(crate) fn from_key_pair(key: &rcgen::KeyPair) -> Self {
        Self::new(key.serialize_pem())
    }
}

impl From<String> for PrivateKeyPem {
    fn from(pem: String) -> Self {
        Self::new(pem)
    }
}

// `Debug` and `Display` come from the wrapped `Secret`: `[redacted]`.
impl std::fmt::Debug for PrivateKeyPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.0, f)
    }
}

impl std::fmt::Display for PrivateKeyPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_key() {
        let key = PrivateKeyPem::from_key_pair(&rcgen::KeyPair::generate().unwrap());
        assert_eq!(format!("{key:?}"), "[redacted]");
        assert_eq!(format!("{key}"), "[redacted]");
        assert!(key.expose_secret().contains("PRIVATE KEY"));
    }

    #[test]
    fn key_round_trips_to_rustls_and_rcgen() {
        let original = rcgen::KeyPair::generate().unwrap();
        let key = PrivateKeyPem::from_key_pair(&original);
        assert!(matches!(
            key.to_private_key_der().unwrap(),
            PrivateKeyDer::Pkcs8(_)
        ));
        assert_eq!(
            key.to_key_pair().unwrap().public_key_raw(),
            original.public_key_raw()
        );
    }

    #[test]
    fn garbage_is_an_invalid_key_without_echoing_it() {
        let key = PrivateKeyPem::new("not a key at all".to_owned());
        let err = key.to_private_key_der().unwrap_err();
        assert!(matches!(err, TlsError::InvalidKey(_)));
        assert!(!err.to_string().contains("not a key"));
    }
}
