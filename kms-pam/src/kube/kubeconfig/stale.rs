//! Session kubeconfigs left behind by a `pam access` that could not clean up (killed with
//! SIGKILL, the machine lost power): the next session to the same account removes them.
//!
//! A file is stale when it is a kms-pam session kubeconfig (its cluster is named `kms-pam/…`
//! and is a loopback HTTPS server) and nothing listens on that loopback address any more: the
//! local proxy that served it is gone. A file another running session still serves is left alone.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::{read_optional, KubeconfigError};

/// How long a loopback connection may take before the proxy counts as alive but busy.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

#[derive(Deserialize)]
struct Document {
    #[serde(default)]
    clusters: Vec<ClusterEntry>,
}

#[derive(Deserialize)]
struct ClusterEntry {
    name: String,
    cluster: Cluster,
}

#[derive(Deserialize)]
struct Cluster {
    server: String,
}

/// Removes the session kubeconfig at `path` if it is stale; returns whether it did. A file that
/// is not a kms-pam session kubeconfig, or whose local proxy still answers, is kept.
pub async fn remove_stale_session_file(path: &Path) -> Result<bool, KubeconfigError> {
    let Some(bytes) = read_optional(path)? else {
        return Ok(false);
    };
    let Some(addr) = session_proxy(&bytes) else {
        return Ok(false);
    };
    let probe = tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(addr)).await;
    let gone = matches!(probe, Ok(Err(_)));
    if !gone {
        return Ok(false);
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(KubeconfigError::io("remove", path, e)),
    }
}

/// The local proxy address a kms-pam session kubeconfig points at.
fn session_proxy(bytes: &[u8]) -> Option<SocketAddr> {
    let document: Document = yaml_serde::from_slice(bytes).ok()?;
    let [entry] = document.clusters.as_slice() else {
        return None;
    };
    if !entry.name.starts_with("kms-pam/") {
        return None;
    }
    let addr: SocketAddr = entry
        .cluster
        .server
        .strip_prefix("https://")?
        .parse()
        .ok()?;
    addr.ip().is_loopback().then_some(addr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::kubeconfig::{InstalledKubeconfig, KubeconfigTarget, SessionKubeconfig};
    use crate::secret::Secret;

    fn install(path: &Path, server: String) {
        let config = SessionKubeconfig::new("prod", "admin", server, "CA".into(), Secret::new("t"));
        let target = KubeconfigTarget::File(path.to_owned());
        // Dropped without `remove`, as a SIGKILLed `pam access` leaves it.
        drop(InstalledKubeconfig::install(&target, &config).unwrap());
    }

    #[tokio::test]
    async fn only_files_whose_proxy_is_gone_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let live = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let live_file = dir.path().join("live.yaml");
        install(
            &live_file,
            format!("https://{}", live.local_addr().unwrap()),
        );
        let dead_addr = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap()
        };
        let dead_file = dir.path().join("dead.yaml");
        install(&dead_file, format!("https://{dead_addr}"));
        let other = dir.path().join("other.yaml");
        std::fs::write(
            &other,
            "clusters: [{name: prod, cluster: {server: https://127.0.0.1:1}}]",
        )
        .unwrap();

        assert!(!remove_stale_session_file(&live_file).await.unwrap());
        assert!(live_file.exists());
        assert!(remove_stale_session_file(&dead_file).await.unwrap());
        assert!(!dead_file.exists());
        assert!(
            !remove_stale_session_file(&other).await.unwrap(),
            "not ours"
        );
        assert!(other.exists());
        assert!(!remove_stale_session_file(&dir.path().join("none"))
            .await
            .unwrap());
    }
}
