//! Mutual-TLS tunnels over TCP: the production backend of the tunnel transport.
//!
//! - [`TlsConnector`] (CLI side) dials the gateway, presents the session certificate and checks
//!   the gateway's certificate against the KMS CA and the negotiated protocol (`kms-pam/1`).
//! - [`TlsTunnelAcceptor`] (gateway side) runs handshakes concurrently, reads the
//!   [`SessionIdentity`](crate::tls::SessionIdentity) from each client certificate and yields only
//!   tunnels whose certificate names this gateway; [`AcceptorStats`] counts the outcomes.
//!
//! # When the client learns it was refused
//!
//! In TLS 1.3 the client finishes its handshake before the gateway has judged the client
//! certificate, so [`connect`](super::GatewayTransport::connect) succeeds even for an expired or
//! foreign session certificate. The gateway's alert surfaces on the first read from the tunnel,
//! as an [`std::io::Error`] of kind `PermissionDenied` wrapping [`TransportError::Refused`] with
//! an actionable message. A tunnel refused after the handshake (certificate for another gateway)
//! cannot carry an alert, since rustls offers none for application-level refusals: the client
//! reads end-of-stream instead.
//!
//! [`TransportError::Refused`]: super::TransportError::Refused

mod acceptor;
mod connector;
mod errors;
mod stream;

use std::time::Duration;

pub(crate) use acceptor::authenticate;
pub use acceptor::{AcceptorStats, TlsTunnelAcceptor};
pub(crate) use connector::server_name_of;
pub use connector::TlsConnector;
pub(crate) use errors::handshake_error;
pub(crate) use stream::ClientTunnel;

/// How long [`TlsConnector`] waits for the TCP connection to the gateway.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long either side waits for the TLS handshake to finish; on the gateway this bounds how
/// long a silent or slow client can hold a handshake slot.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests;
