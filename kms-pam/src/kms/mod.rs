//! The KMS control plane as its users see it: the HTTP API shapes ([`api`]) shared with the
//! server and the client used by the CLI and the gateway ([`client`]). The gateway's link to KMS
//! is [`crate::gateway::kms`]; the server itself is `kms_pam::server` (feature `server`). The
//! contract is docs/api.md.

pub mod api;
pub mod client;
