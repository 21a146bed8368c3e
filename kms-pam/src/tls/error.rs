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
    InvalidCsr(#[source] rcgen::Error),
    /// A certificate could not be parsed or lacks what its role requires.
    #[error("invalid certificate: {0}")]
    InvalidCertificate(#[source] InvalidCertificateReason),
    /// A private key could not be parsed or does not match its certificate.
    #[error("invalid private key: {0}")]
    InvalidKey(#[source] InvalidKeyReason),
    /// A name to put into a certificate (gateway, session, user, DNS name) is not acceptable.
    #[error("invalid certificate name: {0}")]
    InvalidName(#[source] InvalidNameReason),
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

/// What is wrong with a certificate ([`TlsError::InvalidCertificate`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidCertificateReason {
    /// The PEM text cannot be read.
    #[error("PEM: {0}")]
    Pem(#[source] rustls_pki_types::pem::Error),
    /// The PEM text holds no certificate.
    #[error("no certificate in PEM")]
    NoCertificate,
    /// The DER bytes are not a certificate.
    #[error("cannot parse: {0}")]
    Parse(#[source] x509_parser::nom::Err<x509_parser::error::X509Error>),
    /// Bytes follow the certificate.
    #[error("trailing data after the certificate")]
    TrailingData,
    /// The subjectAltName extension cannot be read.
    #[error("bad subjectAltName: {0}")]
    SubjectAltName(#[source] x509_parser::error::X509Error),
    /// A `kms-pam://` URI component was not written by the CA (empty, or a raw `/`).
    #[error("malformed identity URI component {component:?}")]
    MalformedUriComponent {
        /// The component as found.
        component: String,
    },
    /// A `kms-pam://` URI component does not decode to UTF-8.
    #[error("identity URI is not UTF-8")]
    UriNotUtf8(#[source] std::str::Utf8Error),
    /// The subject's common name is not a string.
    #[error("subject common name is not a string")]
    CommonNameNotString,
    /// A part of the identity is missing (`session URI`, `gateway URI`, `subject common name`).
    #[error("no {what}")]
    Missing {
        /// Which part.
        what: &'static str,
    },
    /// A part of the identity appears more than once.
    #[error("more than one {what}")]
    Several {
        /// Which part.
        what: &'static str,
    },
    /// A session certificate was given where a gateway certificate is needed.
    #[error("a session certificate is not a gateway certificate")]
    SessionNotGateway,
    /// A validity time cannot be represented.
    #[error("validity time out of range")]
    ValidityOutOfRange,
    /// The CA certificate's PEM text cannot be read.
    #[error("CA certificate PEM: {0}")]
    CaPem(#[source] rustls_pki_types::pem::Error),
    /// The CA certificate cannot be parsed.
    #[error("CA certificate: {0}")]
    CaParse(#[source] x509_parser::nom::Err<x509_parser::error::X509Error>),
    /// The CA certificate cannot be used to issue certificates.
    #[error("CA certificate: {0}")]
    CaIssuer(#[source] rcgen::Error),
    /// The CA certificate is not marked as a CA.
    #[error("not a CA certificate")]
    NotCa,
    /// A CA bundle's certificate cannot be a root.
    #[error("CA certificate: {0}")]
    Root(#[source] rustls::Error),
}

/// What is wrong with a name to put into a certificate ([`TlsError::InvalidName`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidNameReason {
    /// The name is empty (`session id`, `gateway name`, `user name`).
    #[error("empty {what}")]
    Empty {
        /// Which name.
        what: &'static str,
    },
    /// A server certificate was asked for without a name.
    #[error("a server certificate needs at least one name")]
    NoServerName,
    /// A server name is neither a DNS name nor an IP address.
    #[error("{name:?} is neither a DNS name nor an IP address")]
    NotAServerName {
        /// The name as given.
        name: String,
    },
    /// An identity URI cannot be written into a certificate.
    #[error("identity URI: {0}")]
    IdentityUri(#[source] rcgen::Error),
    /// A gateway address is not `host:port` with a usable host.
    #[error("gateway address {address:?}: {problem}")]
    GatewayAddress {
        /// The address as given.
        address: String,
        /// What is wrong with it (`bad port`).
        problem: &'static str,
    },
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
