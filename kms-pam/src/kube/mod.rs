//! Kubernetes-specific knowledge: what a request means to kubectl, `Status` bodies, kubeconfig.

pub mod request_info;
