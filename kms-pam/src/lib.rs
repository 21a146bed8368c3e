//! kms-pam: just-in-time, audited access to Kubernetes clusters.
#![forbid(unsafe_code)]

pub mod access;
pub mod audit;
pub mod credential;
pub mod gateway;
pub mod kms;
pub mod kube;
pub mod local;
pub mod metrics;
pub mod proxy;
pub mod secret;
pub mod session;
pub mod store;
pub mod time;
pub mod tls;
pub mod transport;

pub use audit::AuditSink;
pub use credential::CredentialStore;
pub use secret::Secret;
pub use session::SessionManager;
pub use transport::{GatewayTransport, TunnelAcceptor};
