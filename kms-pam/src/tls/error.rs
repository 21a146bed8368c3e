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
    InvalidKey(String),
    /// A name to put into a certificate (gateway, session, user, DNS name) is not acceptable.
    #[error("invalid certificate name: {0}")]
    InvalidName(String),
    /// Generating a key or signing a certificate failed.
    #[error("certificate generation failed: {0}")]
    Generate(String),
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
