//! The error type of the TLS area.

/// Why a TLS operation failed.
///
/// The variant says which input was at fault so a caller can choose the answer: a bad CSR or
/// certificate comes from the peer (client error), `Generate`, `Rustls`, `Verifier` and
/// `NoSystemRoots` point at this side.
/// Messages never contain key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A certificate signing request could not be parsed, its self-signature does not verify,
    /// or it asks for something this CA does not sign.
    #[error("invalid certificate signing request: {0}")]
    InvalidCsr(String),
    /// A certificate could not be parsed or lacks what its role requires.
    #[error("invalid certificate: {0}")]
    InvalidCertificate(String),
    /// A private key could not be parsed or does not match its certificate.
    #[error("invalid private key: {0}")]
    InvalidKey(#[source] InvalidKeyReason),
    /// A name to put into a certificate (gateway, session, user, DNS name) is not acceptable.
    #[error("invalid certificate name: {0}")]
    InvalidName(String),
    /// Generating a key or signing a certificate failed.
    #[error("certificate generation failed: {0}")]
    Generate(#[source] GenerateReason),
    /// rustls refused to build a configuration from otherwise valid material (a key that does
    /// not match its certificate, no common protocol version).
    #[error("TLS configuration failed: {0}")]
    Rustls(#[source] rustls::Error),
    /// A certificate verifier could not be built from the roots given.
    #[error("TLS configuration failed: {peer} certificate verifier: {source}")]
    Verifier {
        /// Whose certificates it verifies (`client`, `API server`).
        peer: &'static str,
        /// Why.
        #[source]
        source: rustls::server::VerifierBuilderError,
    },
    /// The system certificate store holds no usable root certificate.
    #[error("TLS configuration failed: no usable root certificate in the system store")]
    NoSystemRoots,
}

/// Why a private key is not usable ([`TlsError::InvalidKey`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidKeyReason {
    /// The PEM text holds no readable private key.
    #[error("cannot read PEM private key: {0}")]
    Pem(#[source] rustls_pki_types::pem::Error),
    /// The PEM text holds no private key rcgen can sign with.
    #[error("cannot read PEM private key: {0}")]
    KeyPair(#[source] rcgen::Error),
    /// The CA's key is not the key of the CA certificate.
    #[error("key does not match the CA certificate")]
    NotTheCaKey,
}

/// Why generating a key or signing a certificate failed ([`TlsError::Generate`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GenerateReason {
    /// rcgen could not generate the key or sign.
    #[error("{0}")]
    Rcgen(#[source] rcgen::Error),
    /// The validity asked for ends before it starts.
    #[error("validity ends before it starts")]
    ValidityReversed,
    /// The validity asked for cannot be written into a certificate.
    #[error("validity out of range")]
    ValidityOutOfRange,
    /// No randomness to make a secret with.
    #[error("{0}")]
    Random(#[source] crate::secret::RandomUnavailable),
}
