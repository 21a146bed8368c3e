//! Standalone mode: a gateway run from a YAML file of resources, accounts and sessions instead of
//! KMS. For embedders with their own control plane, and for tests. See docs/standalone-gateway.md.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use serde::Deserialize;
use tokio::net::TcpListener;

use super::mtls::{GatewayTls, MtlsGateway};
use super::{GatewayError, GatewayOptions};
use crate::audit::recording::RecordingPolicy;
use crate::credential::{MemoryCredentialStore, Upstream};
use crate::secret::Secret;
use crate::session::{MemorySessionManager, Session, SessionId, SessionStatus};
use crate::tls::{PrivateKeyPem, UpstreamTls};

/// The file, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StandaloneFile {
    /// The gateway's name (sessions and certificates are bound to it).
    pub name: String,
    /// The gateway's own TLS material.
    pub tls: TlsFiles,
    /// Kubernetes API servers.
    #[serde(default)]
    pub resources: Vec<ResourceEntry>,
    /// Service-account tokens.
    #[serde(default)]
    pub accounts: Vec<AccountEntry>,
    /// Sessions issued elsewhere (their certificates signed by `tls.ca_cert`).
    #[serde(default)]
    pub sessions: Vec<SessionEntry>,
}

/// Paths of the gateway's TLS files.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The CA that signs session certificates.
    pub ca_cert: PathBuf,
    /// This gateway's server certificate (PEM chain).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
}

/// A Kubernetes API server.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceEntry {
    /// Resource name.
    pub name: String,
    /// API server URL.
    pub url: url::Url,
    /// A CA bundle to verify the API server with (default: system roots).
    #[serde(default)]
    pub ca_cert: Option<PathBuf>,
    /// `false` disables verification (logged as a warning).
    #[serde(default = "default_true")]
    pub ssl_verify: bool,
    /// Streams the gateway cannot record: `deny` (default) or `allow`; and the recording caps
    /// (`max_bytes`, `max_input_bytes`), as `pam resource create` sets them.
    #[serde(default)]
    pub recording: RecordingPolicy,
}

fn default_true() -> bool {
    true
}

/// A service-account token of a resource.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountEntry {
    /// The resource it belongs to.
    pub resource: String,
    /// Account name.
    pub name: String,
    /// A file holding the token (surrounding whitespace is ignored).
    pub token_file: PathBuf,
}

/// A session issued out of band.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionEntry {
    /// Session id (as in its certificate).
    pub id: String,
    /// User.
    pub user: String,
    /// Resource.
    pub resource: String,
    /// Account.
    pub account: String,
    /// Expiry, RFC 3339.
    #[serde(with = "crate::time::rfc3339")]
    pub expires_at: SystemTime,
}

/// A loaded standalone configuration, ready to build a gateway from.
#[derive(Debug)]
pub struct Standalone {
    /// Gateway name.
    pub name: String,
    /// CA certificate PEM.
    pub ca_pem: String,
    /// Server certificate PEM.
    pub cert_pem: String,
    /// Server key.
    pub key: PrivateKeyPem,
    /// Sessions of the file.
    pub sessions: MemorySessionManager,
    /// Resources and accounts of the file.
    pub credentials: MemoryCredentialStore,
}

/// Errors loading a standalone file: each names the file at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StandaloneError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The YAML is invalid.
    #[error("invalid standalone gateway file {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

fn read(path: &Path) -> Result<String, StandaloneError> {
    std::fs::read_to_string(path).map_err(|source| StandaloneError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Loads a standalone file; relative paths inside it are relative to the file's directory.
pub fn load(path: &Path) -> Result<Standalone, StandaloneError> {
    let invalid = |message: String| StandaloneError::Invalid {
        path: path.to_owned(),
        message,
    };
    let file: StandaloneFile =
        yaml_serde::from_str(&read(path)?).map_err(|e| invalid(e.to_string()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let at = |p: &Path| base.join(p);

    let credentials = MemoryCredentialStore::new();
    for r in &file.resources {
        if r.url.scheme() != "https" {
            return Err(invalid(format!(
                "resource {}: API server URLs must use https:// (the gateway sends the account's \
                 token to it), not {}",
                r.name, r.url
            )));
        }
        let tls = match (&r.ca_cert, r.ssl_verify) {
            (_, false) => UpstreamTls::InsecureSkipVerify,
            (Some(ca), true) => UpstreamTls::CaBundle(read(&at(ca))?),
            (None, true) => UpstreamTls::SystemRoots,
        };
        credentials.add_resource(
            &r.name,
            Upstream {
                url: r.url.clone(),
                tls,
            },
        );
        credentials.set_recording_policy(&r.name, r.recording);
    }
    for a in &file.accounts {
        if !file.resources.iter().any(|r| r.name == a.resource) {
            return Err(invalid(format!(
                "account {}/{} names an unknown resource",
                a.resource, a.name
            )));
        }
        let token = read(&at(&a.token_file))?.trim().to_owned();
        if token.is_empty() {
            return Err(invalid(format!(
                "token file of account {}/{} is empty",
                a.resource, a.name
            )));
        }
        credentials.add_account(&a.resource, &a.name, Secret::new(token));
    }
    let sessions = MemorySessionManager::new();
    let now = SystemTime::now();
    for s in file.sessions {
        sessions.insert(Session {
            id: SessionId::new(s.id),
            user: s.user,
            resource: s.resource,
            account: s.account,
            gateway: file.name.clone(),
            status: SessionStatus::Active,
            created_at: now,
            expires_at: s.expires_at,
            ended_at: None,
            reason: None,
            binding: None,
        });
    }
    Ok(Standalone {
        name: file.name,
        ca_pem: read(&at(&file.tls.ca_cert))?,
        cert_pem: read(&at(&file.tls.cert))?,
        key: PrivateKeyPem::new(read(&at(&file.tls.key))?),
        sessions,
        credentials,
    })
}

/// Runs a standalone gateway: mutual TLS on `listener`, sessions and credentials from the file,
/// until `shutdown` resolves.
pub async fn serve<F>(
    listener: TcpListener,
    standalone: Standalone,
    options: GatewayOptions,
    shutdown: F,
) -> Result<(), GatewayError>
where
    F: Future<Output = ()>,
{
    let tls = GatewayTls::new(standalone.ca_pem, standalone.cert_pem, standalone.key);
    let gateway = MtlsGateway::new(
        standalone.name,
        tls,
        Arc::new(standalone.sessions),
        Arc::new(standalone.credentials),
        options,
    );
    super::mtls::serve(listener, gateway, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("kms-pam-standalone-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for f in ["ca.pem", "gw.pem", "gw.key"] {
            write(&dir, f, "PEM");
        }
        write(&dir, "token", "  sa-token\n");
        dir
    }

    #[tokio::test]
    async fn loads_resources_accounts_and_sessions() {
        let dir = scratch("ok");
        write(&dir, "gw.yaml", "name: gw-1\ntls: {ca_cert: ca.pem, cert: gw.pem, key: gw.key}\n\
            resources:\n  - {name: prod, url: 'https://10.0.0.1:6443', ssl_verify: false}\n\
            accounts:\n  - {resource: prod, name: admin, token_file: token}\n\
            sessions:\n  - {id: s-1, user: alice, resource: prod, account: admin, expires_at: '2999-01-01T00:00:00Z'}\n");
        let loaded = load(&dir.join("gw.yaml")).unwrap();
        assert_eq!(loaded.name, "gw-1");
        use crate::{CredentialStore, SessionManager};
        let session = loaded.sessions.get(&SessionId::new("s-1")).await.unwrap();
        assert_eq!(session.gateway, "gw-1");
        let cred = loaded.credentials.credential(&session).await.unwrap();
        assert_eq!(cred.token.expose(), "sa-token");
        assert_eq!(cred.upstream.tls, UpstreamTls::InsecureSkipVerify);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn errors_name_the_file_and_the_problem() {
        let dir = scratch("bad");
        write(&dir, "typo.yaml", "name: gw\ntls: {ca_cert: ca.pem, cert: gw.pem, key: gw.key}\nresources: []\nacounts: []\n");
        let err = load(&dir.join("typo.yaml")).err().unwrap().to_string();
        assert!(
            err.contains("typo.yaml") && err.contains("acounts"),
            "{err}"
        );
        write(
            &dir,
            "orphan.yaml",
            "name: gw\ntls: {ca_cert: ca.pem, cert: gw.pem, key: gw.key}\n\
            accounts:\n  - {resource: nope, name: a, token_file: token}\n",
        );
        let err = load(&dir.join("orphan.yaml")).err().unwrap().to_string();
        assert!(err.contains("unknown resource"), "{err}");
        write(
            &dir,
            "http.yaml",
            "name: gw\ntls: {ca_cert: ca.pem, cert: gw.pem, key: gw.key}\n\
            resources:\n  - {name: prod, url: 'http://10.0.0.1:8080'}\n",
        );
        let err = load(&dir.join("http.yaml")).err().unwrap().to_string();
        assert!(
            err.contains("http.yaml") && err.contains("must use https://"),
            "{err}"
        );
        let err = load(&dir.join("missing.yaml")).err().unwrap().to_string();
        assert!(
            err.contains("cannot read") && err.contains("missing.yaml"),
            "{err}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
