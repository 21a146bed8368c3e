//! Running the real `kubectl` against a server, isolated from the user's own configuration.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

/// How long [`Kubectl::run`] lets one invocation take before failing the test.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// The kubectl binary: `$KUBECTL`, else `/usr/bin/kubectl`.
///
/// # Panics
/// When the binary does not exist: end-to-end tests must fail loudly, never skip silently.
pub fn kubectl_binary() -> PathBuf {
    let path = std::env::var_os("KUBECTL")
        .map_or_else(|| PathBuf::from("/usr/bin/kubectl"), PathBuf::from);
    assert!(
        path.is_file(),
        "kubectl not found at {}: install kubectl 1.32 (the end-to-end tests drive the real client) or set $KUBECTL to its path",
        path.display()
    );
    path
}

/// What one kubectl invocation produced.
#[derive(Debug)]
pub struct KubectlOutput {
    /// Exit status.
    pub status: ExitStatus,
    /// Raw standard output.
    pub stdout: Vec<u8>,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

impl KubectlOutput {
    /// Standard output as text (lossy).
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Whether kubectl exited with status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }
}

/// kubectl bound to one server: a private kubeconfig, cache dir and `HOME` in a tempdir, so
/// discovery really happens and nothing of the machine's own configuration leaks in.
#[derive(Debug)]
pub struct Kubectl {
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl Kubectl {
    /// Writes a kubeconfig for `server_url` trusting `ca_pem`, authenticating with `token`, with
    /// namespace `default`.
    pub fn new(server_url: &str, ca_pem: &str, token: &str) -> std::io::Result<Self> {
        let dir = tempfile::Builder::new().prefix("kubectl-").tempdir()?;
        let kubeconfig = dir.path().join("kubeconfig");
        // kubeconfig is YAML, and JSON is YAML.
        let config = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "test", "cluster": {
                "server": server_url,
                "certificate-authority-data": STANDARD.encode(ca_pem),
            }}],
            "users": [{"name": "test", "user": {"token": token}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test", "namespace": "default"}}],
            "current-context": "test",
        });
        std::fs::write(&kubeconfig, serde_json::to_vec_pretty(&config)?)?;
        std::fs::create_dir_all(dir.path().join("cache"))?;
        Ok(Self { dir, kubeconfig })
    }

    /// A kubectl for an open kms-pam session: its loopback proxy, CA and local token.
    pub fn for_session(session: &kms_pam::access::AccessSession) -> std::io::Result<Self> {
        let token = session.local_token().expose();
        Self::new(&session.server_url(), session.local_ca_pem(), token)
    }

    /// The kubeconfig this kubectl uses.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(kubectl_binary());
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .env("HOME", self.dir.path())
            .env_remove("KUBECONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    /// Runs kubectl with `args` and no stdin, waiting up to 60 s.
    ///
    /// # Panics
    /// When kubectl cannot be started or runs past the timeout (the panic shows its output).
    pub async fn run(&self, args: &[&str]) -> KubectlOutput {
        self.run_inner(args, None).await
    }

    /// Runs kubectl with `args`, feeding it `stdin` and then closing it.
    ///
    /// # Panics
    /// As [`Kubectl::run`].
    pub async fn run_with_stdin(&self, args: &[&str], stdin: Vec<u8>) -> KubectlOutput {
        self.run_inner(args, Some(stdin)).await
    }

    async fn run_inner(&self, args: &[&str], stdin: Option<Vec<u8>>) -> KubectlOutput {
        let mut command = self.command(args);
        command.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", kubectl_binary().display()));
        if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
            tokio::spawn(async move {
                // kubectl may exit before reading everything; that is its business.
                let _ = pipe.write_all(&data).await;
                let _ = pipe.shutdown().await;
            });
        }
        let stdout = drain(child.stdout.take());
        let stderr = drain(child.stderr.take());
        let status = match tokio::time::timeout(RUN_TIMEOUT, child.wait()).await {
            Ok(status) => status.unwrap_or_else(|e| panic!("waiting for kubectl {args:?}: {e}")),
            Err(_) => {
                let _ = child.kill().await;
                let stderr =
                    String::from_utf8_lossy(&stderr.await.unwrap_or_default()).into_owned();
                panic!("kubectl {args:?} did not finish within {RUN_TIMEOUT:?}; stderr so far:\n{stderr}");
            }
        };
        let stdout = stdout.await.unwrap_or_default();
        let stderr = String::from_utf8_lossy(&stderr.await.unwrap_or_default()).into_owned();
        KubectlOutput {
            status,
            stdout,
            stderr,
        }
    }

    /// Starts kubectl for a long-running command (`get -w`, `logs -f`): stdout and stderr piped,
    /// stdin null, killed when the handle is dropped.
    ///
    /// # Panics
    /// When kubectl cannot be started.
    pub fn spawn(&self, args: &[&str]) -> Child {
        let mut command = self.command(args);
        command.stdin(Stdio::null());
        command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", kubectl_binary().display()))
    }
}

/// Reads a pipe to the end in the background, so a chatty child never blocks on a full pipe.
fn drain<R: tokio::io::AsyncRead + Unpin + Send + 'static>(
    pipe: Option<R>,
) -> tokio::task::JoinHandle<Vec<u8>> {
    tokio::spawn(async move {
        let mut buffer = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut buffer).await;
        }
        buffer
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_kubeconfig_with_the_ca_and_token() {
        let kubectl = Kubectl::new("https://127.0.0.1:1", "PEM", "secret-token").unwrap();
        let text = std::fs::read_to_string(kubectl.kubeconfig_path()).unwrap();
        let config: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            config["clusters"][0]["cluster"]["server"],
            "https://127.0.0.1:1"
        );
        assert_eq!(
            config["clusters"][0]["cluster"]["certificate-authority-data"],
            STANDARD.encode("PEM")
        );
        assert_eq!(config["users"][0]["user"]["token"], "secret-token");
    }
}
