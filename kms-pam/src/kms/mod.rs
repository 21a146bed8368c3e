//! The KMS control plane: its HTTP API shapes ([`api`]), the server, and the client used by the
//! CLI and the gateway. The contract is docs/api.md.

pub mod api;
pub mod client;
pub mod gateway_link;
#[cfg(feature = "server")]
pub mod server;
