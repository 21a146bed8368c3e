//! kms-pam: just-in-time, audited access to Kubernetes clusters.
#![forbid(unsafe_code)]

pub mod kube;
pub mod tls;
