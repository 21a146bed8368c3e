//! The KMS control plane as its users see it: the HTTP API shapes ([`api`]) shared with the
//! server, the client used by the CLI ([`client`]) and the gateway's link ([`gateway_link`]). The
//! server itself is `kms_pam::server` (feature `server`). The contract is docs/api.md.

pub mod api;
pub mod client;
pub mod gateway_link;
