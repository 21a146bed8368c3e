//! How the server is configured ([`ServerConfig`]) and why it may fail to start or serve
//! ([`ServerError`]); re-exported at [`crate::server`].

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use super::store::StoreError;
use crate::tls::TlsError;

/// How long a session's client may stop asking KMS about it before KMS ends it as abandoned
/// (docs/cli.md).
pub const DEFAULT_ABANDON_AFTER: Duration = Duration::from_secs(30);

/// Where the server keeps its state, and how it treats sessions.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Data directory (created with mode 0700): `kms.db`, `root.key`, `admin.token`.
    pub data_dir: PathBuf,
    /// Database URL: `sqlite://PATH` or `postgres://USER@HOST:PORT/DB`; `None` means SQLite at
    /// `DATA/kms.db`.
    pub database: Option<String>,
    /// The root key file sealing secrets at rest; `None` means `DATA/root.key`. Replicas sharing
    /// a PostgreSQL database must all be given the same file (docs/operations.md).
    pub root_key: Option<PathBuf>,
    /// A session whose owner's client has not asked KMS about it for longer than this is ended
    /// with cause `abandoned` ([`DEFAULT_ABANDON_AFTER`]; whole seconds, at least one).
    pub abandon_after: Duration,
    /// Serve HTTPS with this certificate and key (`--tls-cert`/`--tls-key`); `None` serves plain
    /// HTTP, meant for loopback or behind a TLS-terminating proxy.
    pub tls: Option<ServerTls>,
}

/// The certificate and key files KMS serves HTTPS with (PEM; the certificate file may hold the
/// chain, leaf first). Checked at start; re-read when they change, at most once per
/// [`reload_check`](Self::reload_check).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerTls {
    /// The certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// The leaf's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// How often, at most, a handshake looks whether the files changed ([`DEFAULT_TLS_RELOAD_CHECK`]).
    pub reload_check: Duration,
}

/// How often, at most, KMS looks whether its certificate and key files changed.
pub const DEFAULT_TLS_RELOAD_CHECK: Duration = Duration::from_secs(5);

impl ServerTls {
    /// These files, looked at for changes every [`DEFAULT_TLS_RELOAD_CHECK`] at most.
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        Self {
            cert: cert.into(),
            key: key.into(),
            reload_check: DEFAULT_TLS_RELOAD_CHECK,
        }
    }

    /// With the files looked at for changes at most this often (tests use a few milliseconds).
    pub fn with_reload_check(mut self, every: Duration) -> Self {
        self.reload_check = every;
        self
    }
}

/// What is wrong with the certificate or key files of [`ServerTls`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsFileProblem {
    /// A file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The certificate file holds no PEM certificate.
    #[error("the certificate file holds no PEM certificate (-----BEGIN CERTIFICATE-----)")]
    NoCertificate,
    /// The first certificate does not parse.
    #[error("the certificate file's first certificate is not a valid X.509 certificate")]
    InvalidCertificate,
    /// The key file holds no PEM private key.
    #[error("the key file holds no PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    NoPrivateKey,
    /// The key's algorithm is not one KMS can sign with.
    #[error("the private key's type is not supported (use ECDSA P-256/P-384, Ed25519 or RSA)")]
    UnsupportedKey,
    /// The key is not the certificate's.
    #[error(
        "the private key is not the certificate's (--tls-key must be the key of the first \
         certificate in --tls-cert)"
    )]
    KeyMismatch,
    /// The certificate has expired.
    #[error("the certificate expired on {not_after}")]
    Expired {
        /// Its `notAfter`.
        not_after: String,
    },
    /// The certificate is not valid yet.
    #[error("the certificate is not valid before {not_before}")]
    NotYetValid {
        /// Its `notBefore`.
        not_before: String,
    },
}

impl ServerConfig {
    /// The default configuration for a data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            database: None,
            root_key: None,
            abandon_after: DEFAULT_ABANDON_AFTER,
            tls: None,
        }
    }

    /// Serving HTTPS with these files (`Some`), or plain HTTP (`None`).
    pub fn with_tls(mut self, tls: Option<ServerTls>) -> Self {
        self.tls = tls;
        self
    }

    /// With the root key read from (or, on an empty database, created at) this file instead of
    /// `DATA/root.key`.
    pub fn with_root_key(mut self, root_key: Option<PathBuf>) -> Self {
        self.root_key = root_key;
        self
    }

    /// With the store at this URL (`sqlite://PATH` or `postgres://…`) instead of `DATA/kms.db`.
    pub fn with_database(mut self, database: Option<String>) -> Self {
        self.database = database;
        self
    }

    /// With sessions ended as abandoned after this long without a word from their client
    /// (rounded up to whole seconds; tests use a few seconds).
    pub fn with_abandon_after(mut self, after: Duration) -> Self {
        let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        self.abandon_after = Duration::from_secs(secs.max(1));
        self
    }

    /// `DATA/admin.token`: where the first start writes the admin's API token (mode 0600).
    pub fn admin_token_path(&self) -> PathBuf {
        self.data_dir.join("admin.token")
    }

    /// The key sealing secrets at rest (mode 0600): the configured file, else `DATA/root.key`.
    pub fn root_key_path(&self) -> PathBuf {
        self.root_key
            .clone()
            .unwrap_or_else(|| self.data_dir.join("root.key"))
    }

    /// `audit.key` beside the root key (`DATA/audit.key` by default): KMS's Ed25519 key
    /// (PKCS#8, mode 0600) that signs the heads of ended sessions, never in the database;
    /// created on the first start. Replicas share it as they share the root key.
    pub fn audit_key_path(&self) -> PathBuf {
        self.root_key_path().with_file_name("audit.key")
    }
}

/// Why the server could not start or serve.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The data directory or a file in it could not be created or written.
    #[error("{}: {source}", path.display())]
    DataDir {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The file saying the upgrade's endorsements were made could not be written beside the
    /// audit key (a read-only key directory: a mounted secret, systemd credentials).
    #[error(
        "cannot write {}: {source}; where the keys are mounted read-only, mount this file with \
         them (for a new database it only needs to exist; docs/deploy.md)",
        path.display()
    )]
    EndorsementMarker {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The store could not be opened or refused to (e.g. an unsafe or missing root key).
    #[error(transparent)]
    Store(#[from] StoreFailure),
    /// The KMS CA could not be created or loaded.
    #[error("KMS CA: {0}")]
    Ca(#[from] TlsError),
    /// KMS's audit key could not be created or loaded.
    #[error("KMS audit key: {0}")]
    AuditKey(#[from] crate::audit::evidence::signing::SigningError),
    /// `--database` names a store this build does not have (only the scheme is shown).
    #[error("unsupported database {scheme:?}: use sqlite://PATH or postgres://USER@HOST:PORT/DB")]
    UnsupportedDatabase {
        /// The URL's scheme (the rest of the URL, credentials included, is never shown).
        scheme: String,
    },
    /// The TLS certificate or key cannot be served.
    #[error("--tls-cert {} / --tls-key {}: {problem}", cert.display(), key.display())]
    TlsFiles {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What is wrong.
        #[source]
        problem: TlsFileProblem,
    },
    /// Accepting connections failed.
    #[error("serving the API: {0}")]
    Serve(#[source] io::Error),
}

/// Why the store failed, as the server's callers see it: its message says what and why (a row
/// not found, a name taken, an unreadable sealed value, the database unreachable). The store's own
/// classification stays inside the server; embedders print this or pass it on as a source.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct StoreFailure(StoreError);

impl StoreFailure {
    pub(crate) fn new(error: StoreError) -> Self {
        Self(error)
    }
}

// How the server's own code turns a store error into its answer (`?`); the store's error is
// crate-private, so the impl is no API.
#[doc(hidden)]
impl From<StoreError> for ServerError {
    fn from(error: StoreError) -> Self {
        Self::Store(StoreFailure(error))
    }
}
