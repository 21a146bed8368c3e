//! TLS material and configurations.
//!
//! - [`CertificateAuthority`]: the KMS CA, which signs gateway certificates at enrollment and one
//!   client certificate per session from a CSR whose key never leaves the client (security invariant 3, docs/security.md).
//! - [`SessionKey`] / [`generate_csr`]: key generation on the requesting side.
//! - [`SessionIdentity`] / [`GatewayIdentity`] / [`RelayIdentity`]: the identities read back
//!   from a certificate.
//! - [`LocalServingCert`]: the per-session certificate the loopback proxy serves (security invariant 5, docs/security.md).
//! - [`tunnel_server_config`] / [`tunnel_client_config`]: the mTLS tunnel, TLS 1.3 only, both
//!   sides verified against the KMS CA; [`upstream_client_config`]: gateway → API server.
//!
//! Every rustls configuration here is built with the `ring` provider passed explicitly; nothing
//! depends on a process-wide default provider. Keys are ECDSA P-256.

mod ca;
mod config;
mod csr;
mod error;
mod identity;
mod local;
mod secret;
mod upstream;
mod upstream_verify;

#[cfg(test)]
pub(crate) mod test_support;

pub use ca::{CertificateAuthority, IssuedCert, SessionCertSpec};
/// The process's rustls provider (ring); for the workspace's own benchmarks, not API.
#[doc(hidden)]
pub use config::crypto_provider;
pub(crate) use config::parse_certs;
pub use config::{tunnel_client_config, tunnel_server_config, TUNNEL_ALPN};
pub use csr::{generate_csr, SessionKey};
pub use error::{
    GenerateReason, InvalidCertificateReason, InvalidKeyReason, InvalidNameReason, TlsError,
};
pub use identity::{
    GatewayIdentity, RelayIdentity, SessionIdentity, GATEWAY_URI_PREFIX, RELAY_URI_PREFIX,
    SESSION_URI_PREFIX,
};
pub use local::LocalServingCert;
pub use secret::PrivateKeyPem;
pub use upstream::{upstream_client_config, UpstreamAlpn, UpstreamTls};
pub(crate) use upstream_verify::explain_upstream_tls_error;
