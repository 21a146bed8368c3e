//! kms-pam: just-in-time, audited access to Kubernetes clusters.
//!
//! # Overview
//!
//! An engineer asks KMS (the control plane) for a short-lived session on a PAM account; the CLI
//! makes a key and CSR locally, gets a session certificate, serves kubectl on an HTTPS loopback
//! proxy, and tunnels over mutual TLS to a gateway near the cluster. The gateway injects the
//! account's service-account token — which never leaves KMS and the gateway — strips anything a
//! client could escalate with, cuts the session at expiry or termination, and records every
//! request as a tamper-evident, durable audit trail.
//!
//! ```text
//! kubectl ─HTTPS─▶ local proxy ═mTLS tunnel═▶ gateway ─HTTPS (SA token)─▶ API server
//!                  [local]      [transport]    [gateway, proxy]
//!     CLI ─▶ KMS [kms::client ─▶ server, server::store]   gateway ─▶ KMS [gateway::kms]
//! ```
//!
//! Everything is built from four small traits with in-memory and real implementations:
//! [`SessionManager`] (the read side a gateway needs: look a session up, learn when it stops),
//! [`CredentialStore`], [`AuditSink`] and [`GatewayTransport`] (with its gateway half
//! [`TunnelAcceptor`]), and a composable proxy engine ([`proxy`]): an embedder assembles the
//! gateway's request path with [`proxy::Pipeline::builder`] — stages of their own
//! ([`proxy::ProxyHooks`], with per-request state) around the built-in checks, a replaceable
//! upstream client, observers ([`metrics::GatewayObserver`]) — and gives the local proxy stages
//! too. [`access::open_session`] works with any [`access::SessionBroker`], KMS's or the
//! embedder's own. `docs/architecture.md` in the repository draws the pipeline, the flow of one
//! request and one exec stream.
//!
//! # Getting started
//!
//! Open a session and serve kubectl on loopback, as `kms-pam pam access` does:
//!
//! ```no_run
//! use std::time::Duration;
//! use kms_pam::access::{open_session, AccessRequest};
//! use kms_pam::kms::client::KmsClient;
//! use kms_pam::Secret;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let kms = KmsClient::new("https://kms.example.com", Some(Secret::new("kmsu_…")))?;
//! let session = open_session(&kms, AccessRequest::new("prod-k8s", "admin", Duration::from_secs(3600))).await?;
//! println!("kubectl --server {} (token and CA from the session)", session.server_url());
//! let end = session.wait_ended().await; // expiry or termination
//! println!("{}", end.describe());
//! session.close().await?;
//! # Ok(()) }
//! ```
//!
//! The request classifier the audit trail uses:
//!
//! ```
//! use kms_pam::kube::{RequestInfo, Verb};
//! let info = RequestInfo::classify(&http::Method::GET, "/api/v1/namespaces/default/pods", Some("watch=true"));
//! assert_eq!(info.verb, Verb::Watch);
//! assert_eq!(info.resource.as_deref(), Some("pods"));
//! ```
//!
//! # Feature flags
//!
//! No feature is on by default: the default build is the client side (sessions, local proxy,
//! KMS client) and the gateway, without a web framework or a database driver.
//!
//! - `server`: the KMS control plane, `server` (its HTTP API on axum, its SQLite or PostgreSQL
//!   store on sqlx). The `kms-pam` CLI turns it on for `kms-pam server` and `kms-pam dev`;
//!   a tool that only opens sessions, serves the local proxy or runs a gateway leaves it off.
//! - `bench-internals`: not part of the API; exposes internals to kms-pam's own benchmarks.
#![forbid(unsafe_code)]

pub mod access;
pub mod audit;
pub mod credential;
#[doc(hidden)]
pub mod fsutil;
pub mod gateway;
pub mod kms;
pub mod kube;
pub mod local;
pub mod metrics;
mod net;
#[cfg(test)]
mod proptests;
pub mod proxy;
pub mod relay;
pub mod secret;
#[cfg(feature = "server")]
pub mod server;
pub mod session;
pub mod time;
pub mod tls;
pub mod transport;

pub use audit::AuditSink;
pub use credential::CredentialStore;
pub use secret::Secret;
pub use session::SessionManager;
pub use transport::{GatewayTransport, TunnelAcceptor};
