//! Session kubeconfigs: the file `pam access` writes so kubectl talks to the local proxy, and the
//! entries it merges into (then removes from) a user's own kubeconfig with `--merge`.
//!
//! A session kubeconfig names one cluster, user and context, all called
//! `kms-pam/RESOURCE/ACCOUNT`: the cluster is the local proxy (`https://127.0.0.1:PORT`, trusted
//! through `certificate-authority-data`), the user carries the per-session local bearer token
//! (security invariant 5, docs/security.md). It holds that token, so it is written with mode 0600 in a directory created 0700,
//! by replacing the file, never through a symbolic link and never into a directory or file
//! another user controls ([`crate::fsutil`]).

mod merge;
mod stale;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Serialize;
use zeroize::Zeroizing;

pub use merge::MergedKubeconfig;
pub use stale::remove_stale_session_file;

use crate::fsutil;
use crate::secret::Secret;

/// What a session kubeconfig points kubectl at.
#[derive(Clone, Debug)]
pub struct SessionKubeconfig {
    /// Cluster, user and context name: `kms-pam/RESOURCE/ACCOUNT`.
    pub name: String,
    /// The local proxy, `https://127.0.0.1:PORT`.
    pub server: String,
    /// The CA (PEM) of the local proxy's certificate.
    pub ca_pem: String,
    /// The per-session local bearer token.
    pub token: Secret,
}

impl SessionKubeconfig {
    /// The kubeconfig for a session to `resource`/`account` served at `server`.
    pub fn new(
        resource: &str,
        account: &str,
        server: String,
        ca_pem: String,
        token: Secret,
    ) -> Self {
        Self {
            name: context_name(resource, account),
            server,
            ca_pem,
            token,
        }
    }

    /// The whole file: the one cluster, user and context, the context selected.
    pub fn to_yaml(&self) -> Result<Zeroizing<String>, KubeconfigError> {
        let document = Document {
            api_version: "v1",
            kind: "Config",
            clusters: [self.cluster_entry()],
            users: [self.user_entry()],
            contexts: [self.context_entry()],
            current_context: &self.name,
            preferences: yaml_serde::Mapping::new(),
        };
        render(&document)
    }

    fn cluster_entry(&self) -> ClusterEntry<'_> {
        ClusterEntry {
            name: &self.name,
            cluster: Cluster {
                server: &self.server,
                certificate_authority_data: base64::engine::general_purpose::STANDARD
                    .encode(self.ca_pem.as_bytes()),
            },
        }
    }

    fn user_entry(&self) -> UserEntry<'_> {
        UserEntry {
            name: &self.name,
            user: User {
                token: self.token.expose(),
            },
        }
    }

    fn context_entry(&self) -> ContextEntry<'_> {
        ContextEntry {
            name: &self.name,
            context: Context {
                cluster: &self.name,
                user: &self.name,
            },
        }
    }
}

/// The context (and cluster and user) name of a session: `kms-pam/RESOURCE/ACCOUNT`.
pub fn context_name(resource: &str, account: &str) -> String {
    format!("kms-pam/{resource}/{account}")
}

/// Where `pam access` writes a session kubeconfig by default:
/// `~/.kube/kms-pam/RESOURCE-ACCOUNT.yaml`. Each account gets its own file, so sessions to
/// different accounts can run side by side.
pub fn default_session_path(resource: &str, account: &str) -> Result<PathBuf, KubeconfigError> {
    let file = format!("{}-{}.yaml", file_safe(resource), file_safe(account));
    Ok(home()?.join(".kube").join("kms-pam").join(file))
}

/// Where `pam access` writes a session kubeconfig by default for an account of `project`:
/// [`default_session_path`] for the project `default` (or none), else
/// `~/.kube/kms-pam/PROJECT/RESOURCE-ACCOUNT.yaml`, so sessions to same-named accounts of two
/// projects do not share a file.
pub fn default_session_path_in(
    project: Option<&str>,
    resource: &str,
    account: &str,
) -> Result<PathBuf, KubeconfigError> {
    let path = default_session_path(resource, account)?;
    match project.filter(|p| *p != crate::session::DEFAULT_PROJECT) {
        None => Ok(path),
        Some(project) => {
            let file = path.file_name().map(ToOwned::to_owned).unwrap_or_default();
            let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
            Ok(dir.join(file_safe(project)).join(file))
        }
    }
}

/// The user's own kubeconfig, `~/.kube/config`: where `--merge` merges by default.
pub fn default_kubeconfig_path() -> Result<PathBuf, KubeconfigError> {
    Ok(home()?.join(".kube").join("config"))
}

/// Where a session's kubeconfig goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KubeconfigTarget {
    /// A file of its own (created 0600), removed at the end.
    File(PathBuf),
    /// Entries merged into an existing kubeconfig (created 0600 if missing), removed at the end
    /// and the previous `current-context` restored.
    Merge(PathBuf),
}

/// A session kubeconfig in place; [`InstalledKubeconfig::remove`] takes it away again.
#[derive(Debug)]
pub enum InstalledKubeconfig {
    /// A file of its own.
    File {
        /// Where.
        path: PathBuf,
        /// What was written, to recognise the file as still ours.
        written: Zeroizing<String>,
    },
    /// Entries merged into another kubeconfig.
    Merged(MergedKubeconfig),
}

impl InstalledKubeconfig {
    /// Writes `config` as `target` says.
    pub fn install(
        target: &KubeconfigTarget,
        config: &SessionKubeconfig,
    ) -> Result<Self, KubeconfigError> {
        match target {
            KubeconfigTarget::File(path) => {
                let written = config.to_yaml()?;
                write_private(path, written.as_bytes())?;
                Ok(Self::File {
                    path: path.clone(),
                    written,
                })
            }
            KubeconfigTarget::Merge(path) => {
                Ok(Self::Merged(MergedKubeconfig::merge(path, config)?))
            }
        }
    }

    /// The file to point `KUBECONFIG` at.
    pub fn path(&self) -> &Path {
        match self {
            Self::File { path, .. } => path,
            Self::Merged(merged) => merged.path(),
        }
    }

    /// Removes the session's file or merged entries. A session file that was meanwhile replaced
    /// by someone else (another session to the same account) is left alone.
    pub fn remove(self) -> Result<(), KubeconfigError> {
        match self {
            Self::File { path, written } => match read_optional(&path)? {
                Some(now) if now.as_slice() == written.as_bytes() => {
                    fs::remove_file(&path).map_err(|e| KubeconfigError::io("remove", &path, e))
                }
                _ => Ok(()),
            },
            Self::Merged(merged) => merged.restore(),
        }
    }
}

/// Why a kubeconfig could not be written, merged or restored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KubeconfigError {
    /// `HOME` is not set, so the default paths do not exist.
    #[error("cannot find the home directory (HOME is not set); pass a kubeconfig path")]
    NoHome,
    /// Reading, writing or removing a file failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done (`write`, `read`, …).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The failure.
        source: io::Error,
    },
    /// An existing kubeconfig is not one this module can edit safely; it is left untouched.
    #[error("{} is not a kubeconfig kms-pam can edit: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Serializing YAML failed.
    #[error("cannot render the kubeconfig: {0}")]
    Render(#[source] yaml_serde::Error),
}

impl KubeconfigError {
    fn io(action: &'static str, path: &Path, source: io::Error) -> Self {
        Self::Io {
            action,
            path: path.to_owned(),
            source,
        }
    }
}

fn home() -> Result<PathBuf, KubeconfigError> {
    std::env::var_os("HOME")
        .filter(|home| !home.is_empty())
        .map(PathBuf::from)
        .ok_or(KubeconfigError::NoHome)
}

/// Keeps file names to characters every file system takes, so a name can never climb out of
/// the directory.
fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect::<String>()
        .trim_start_matches('.')
        .to_owned()
}

fn render(value: &impl Serialize) -> Result<Zeroizing<String>, KubeconfigError> {
    yaml_serde::to_string(value)
        .map(Zeroizing::new)
        .map_err(KubeconfigError::Render)
}

/// Reads a kubeconfig, `None` when absent; never through a symbolic link.
fn read_optional(path: &Path) -> Result<Option<Zeroizing<Vec<u8>>>, KubeconfigError> {
    fsutil::read_no_follow(path)
        .map(|bytes| bytes.map(Zeroizing::new))
        .map_err(|e| KubeconfigError::io("read", path, e))
}

/// Writes a file only its owner can read (0600), creating missing directories only its owner can
/// enter (0700). The file is replaced, never written into, and a link or a file or directory
/// another user controls is refused ([`fsutil::write_private`]).
fn write_private(path: &Path, contents: &[u8]) -> Result<(), KubeconfigError> {
    fsutil::write_private(path, contents).map_err(|e| KubeconfigError::io("write", path, e))
}

/// Replaces a file with `contents` and file mode `mode`, under the same rules.
fn replace_with_mode(path: &Path, contents: &[u8], mode: u32) -> Result<(), KubeconfigError> {
    fsutil::replace_file(path, contents, mode).map_err(|e| KubeconfigError::io("write", path, e))
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Document<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    kind: &'static str,
    clusters: [ClusterEntry<'a>; 1],
    users: [UserEntry<'a>; 1],
    contexts: [ContextEntry<'a>; 1],
    current_context: &'a str,
    preferences: yaml_serde::Mapping,
}

#[derive(Serialize)]
struct ClusterEntry<'a> {
    name: &'a str,
    cluster: Cluster<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Cluster<'a> {
    server: &'a str,
    certificate_authority_data: String,
}

#[derive(Serialize)]
struct UserEntry<'a> {
    name: &'a str,
    user: User<'a>,
}

#[derive(Serialize)]
struct User<'a> {
    token: &'a str,
}

#[derive(Serialize)]
struct ContextEntry<'a> {
    name: &'a str,
    context: Context<'a>,
}

#[derive(Serialize)]
struct Context<'a> {
    cluster: &'a str,
    user: &'a str,
}

#[cfg(test)]
mod tests;
