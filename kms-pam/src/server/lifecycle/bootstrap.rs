//! What a start does before serving: the data directory (0700), the store with its root key,
//! the project `default`, the KMS CA, and on the first start the user `admin`, whose token is
//! written to `DATA/admin.token` (0600).

use std::fs;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::keys::endorse_keys_at_upgrade;
use crate::audit::evidence::signing::SigningKey;
use crate::kms::api::{DEFAULT_PROJECT, USER_TOKEN_PREFIX};
use crate::secret::Secret;
use crate::server::config::{ServerConfig, ServerError};
use crate::server::edge::state::now;
use crate::server::store::crypto::issue_token;
use crate::server::store::postgres::PostgresStore;
use crate::server::store::sqlite::SqliteStore;
use crate::server::store::{NewUser, ProjectRecord, Store, StoreError, StoredCa};
use crate::tls::CertificateAuthority;

/// The bootstrapped administrator.
pub(crate) const ADMIN_USER: &str = "admin";
/// Lifetime of the KMS CA.
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
const CA_NAME: &str = "kms-pam KMS CA";

/// The storage side of a started server.
pub(crate) struct Prepared {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) ca: CertificateAuthority,
    pub(crate) audit_key: SigningKey,
    pub(crate) project: ProjectRecord,
    pub(crate) admin_created: bool,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("project", &self.project)
            .field("admin_created", &self.admin_created)
            .finish_non_exhaustive()
    }
}

pub(crate) async fn prepare(config: &ServerConfig) -> Result<Prepared, ServerError> {
    create_data_dir(&config.data_dir)?;
    let key_file = config.root_key_path();
    let store: Arc<dyn Store> = match config.database.as_deref() {
        None => Arc::new(SqliteStore::open_path(&config.data_dir.join("kms.db"), &key_file).await?),
        Some(url) if url.starts_with("sqlite:") => {
            Arc::new(SqliteStore::open_url(url, &key_file).await?)
        }
        Some(url) if url.starts_with("postgres:") || url.starts_with("postgresql:") => {
            Arc::new(PostgresStore::open_url(url, &key_file).await?)
        }
        Some(url) => {
            return Err(ServerError::UnsupportedDatabase {
                scheme: scheme_of(url),
            })
        }
    };
    let project = store.ensure_project(DEFAULT_PROJECT, now()).await?;
    let ca = load_or_create_ca(store.as_ref()).await?;
    let admin_created = ensure_admin(store.as_ref(), &config.admin_token_path()).await?;
    let (audit_key, created) = SigningKey::load_or_create(&config.audit_key_path())?;
    let fingerprint = audit_key.public_key().fingerprint();
    if created {
        tracing::info!(path = %config.audit_key_path().display(), key = %fingerprint,
            "created KMS's audit key; record its fingerprint to verify exported sessions");
    } else {
        tracing::info!(key = %fingerprint, "KMS audit key");
    }
    let marker = config
        .audit_key_path()
        .with_file_name("audit-keys-endorsed");
    endorse_keys_at_upgrade(store.as_ref(), &audit_key, &marker).await?;
    Ok(Prepared {
        store,
        ca,
        audit_key,
        project,
        admin_created,
    })
}

/// Only the scheme: the rest of a database URL may hold a password.
fn scheme_of(url: &str) -> String {
    url.split_once(':')
        .map_or("(no scheme)", |(scheme, _)| scheme)
        .to_owned()
}

fn create_data_dir(dir: &Path) -> Result<(), ServerError> {
    let io_error = |source| ServerError::DataDir {
        path: dir.to_owned(),
        source,
    };
    crate::fsutil::create_private_dir(dir).map_err(io_error)?;
    if let Some(mode) = crate::fsutil::shared_mode(&fs::metadata(dir).map_err(io_error)?) {
        tracing::warn!(
            dir = %dir.display(),
            mode = %format!("{mode:o}"),
            "the KMS data directory is accessible to other users; chmod 700 it"
        );
    }
    Ok(())
}

async fn load_or_create_ca(store: &dyn Store) -> Result<CertificateAuthority, ServerError> {
    if let Some(stored) = store.ca().await? {
        return Ok(CertificateAuthority::from_pem(
            &stored.cert_pem,
            stored.key,
        )?);
    }
    let ca = CertificateAuthority::generate(CA_NAME, CA_VALIDITY)?;
    let stored = StoredCa {
        cert_pem: ca.cert_pem().to_owned(),
        key: ca.key_pem().clone(),
    };
    match store.save_ca(&stored).await {
        Ok(()) => Ok(ca),
        // Another process sharing the database stored its CA first: use that one.
        Err(StoreError::Conflict(_)) => match store.ca().await? {
            Some(stored) => Ok(CertificateAuthority::from_pem(
                &stored.cert_pem,
                stored.key,
            )?),
            None => Err(StoreError::Corrupt("the stored CA disappeared".to_owned()).into()),
        },
        Err(e) => Err(e.into()),
    }
}

/// Creates `admin` if absent. The token file is written before the user row, so a crash in
/// between leaves a useless file that the next start replaces, never an admin nobody can use.
async fn ensure_admin(store: &dyn Store, token_path: &Path) -> Result<bool, ServerError> {
    match store.user_by_name(ADMIN_USER).await {
        Ok(_) => return Ok(false),
        Err(StoreError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let (token, hash) = issue_token(USER_TOKEN_PREFIX)?;
    write_private(token_path, &token).map_err(|source| ServerError::DataDir {
        path: token_path.to_owned(),
        source,
    })?;
    store
        .create_user(NewUser {
            name: ADMIN_USER.to_owned(),
            admin: true,
            token: hash,
            now: now(),
        })
        .await?;
    tracing::info!(path = %token_path.display(), "created user admin; its API token is in the file");
    Ok(true)
}

/// Writes `secret` to `path` with mode 0600, replacing it atomically (temporary file + rename).
fn write_private(path: &Path, secret: &Secret) -> io::Result<()> {
    crate::fsutil::write_private(path, secret.expose().as_bytes())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn private_files_are_0600_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.token");
        write_private(&path, &Secret::new("one")).unwrap();
        write_private(&path, &Secret::new("two")).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "two");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn database_urls_are_not_echoed_beyond_their_scheme() {
        assert_eq!(scheme_of("postgres://u:secret@h/db"), "postgres");
        assert_eq!(scheme_of("nonsense"), "(no scheme)");
    }
}
