//! Kubernetes-specific knowledge: what a request means to kubectl, `Status` bodies, kubeconfig.

pub mod request_info;
pub mod status;

pub use request_info::{RequestInfo, StreamKind, Verb};
pub use status::Status;
