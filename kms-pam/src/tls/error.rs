//! The error type of the TLS area.

/// Why a TLS operation failed.
///
/// The variant says which input was at fault so a caller can choose the answer: a bad CSR or
/// certificate comes from the peer (client error), `Generate` and `Config` point at this side.
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
    InvalidKey(String),
    /// A name to put into a certificate (gateway, session, user, DNS name) is not acceptable.
    #[error("invalid certificate name: {0}")]
    InvalidName(String),
    /// Generating a key or signing a certificate failed.
    #[error("certificate generation failed: {0}")]
    Generate(String),
    /// A rustls configuration could not be built from otherwise valid material.
    #[error("TLS configuration failed: {0}")]
    Config(String),
}
