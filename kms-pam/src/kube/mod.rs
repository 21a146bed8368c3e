//! Kubernetes-specific knowledge: what a request means to kubectl, `Status` bodies, kubeconfig,
//! and the WebSocket frames of exec and attach streams ([`frames`]).

pub mod frames;
pub mod kubeconfig;
pub mod request_info;
pub mod status;

pub use request_info::{RequestInfo, StreamKind, Verb};
pub use status::Status;

/// Whether a path is one of kubectl's discovery requests: `/api`, `/api/VERSION`, `/apis`,
/// `/apis/GROUP`, `/apis/GROUP/VERSION`, `/version`, or under `/openapi/`.
pub fn is_discovery_path(path: &str) -> bool {
    let trimmed = path.trim_end_matches('/');
    let mut segments = trimmed.split('/').skip(1);
    matches!(
        (segments.next(), segments.count()),
        (Some("api"), 0..=1) | (Some("apis"), 0..=2) | (Some("version"), 0) | (Some("openapi"), _)
    )
}

#[cfg(test)]
mod tests {
    use super::is_discovery_path;

    #[test]
    fn discovery_paths() {
        for p in [
            "/api",
            "/api/",
            "/api/v1",
            "/apis",
            "/apis/apps",
            "/apis/apps/v1",
            "/version",
            "/openapi/v3",
        ] {
            assert!(is_discovery_path(p), "{p}");
        }
        for p in [
            "/",
            "",
            "/api/v1/pods",
            "/apis/apps/v1/deployments",
            "/healthz",
            "/api/v1/namespaces/x",
        ] {
            assert!(!is_discovery_path(p), "{p}");
        }
    }
}
