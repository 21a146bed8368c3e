//! Test support for kms-pam.
//!
//! # Overview
//! - [`apiserver`]: an in-process Kubernetes API server double that the real `kubectl` 1.32
//!   accepts (discovery, Tables, protobuf creates, watches, `logs -f`, exec over WebSocket), and
//!   that records every request it receives.
//! - [`harness`]: the whole kms-pam path in one process (loopback proxy → in-memory tunnel →
//!   gateway → double), driven by the real kubectl.
//! - [`kubectl`]: runs the real `kubectl` against any server with a private kubeconfig.
//! - [`private_ca`]: a throwaway CA and server certificates for a KMS served over HTTPS.
//!
//! # Getting started
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use kms_pam_tests::apiserver::{ApiServerDouble, DoubleConfig};
//! use kms_pam_tests::kubectl::Kubectl;
//! let double = ApiServerDouble::start(DoubleConfig::default()).await?;
//! let kubectl = Kubectl::new(&double.url(), double.ca_pem(), double.token())?;
//! let pods = kubectl.run(&["get", "pods"]).await;
//! assert!(pods.success());
//! double.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Feature flags
//! None.

// Test scaffolding: a set-up that fails (a port, a certificate) panics with its reason, by design.
#![allow(clippy::expect_used, clippy::unwrap_used)]

pub mod apiserver;
pub mod harness;
pub mod kubectl;
pub mod private_ca;
pub mod public_api;
