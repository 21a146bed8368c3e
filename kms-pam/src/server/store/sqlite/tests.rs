//! SQLite-only store tests: file modes, the key file, raw ciphertext, old-schema upgrades; the
//! engine-independent suite is `store::suite`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use super::*;
use crate::secret::Secret;
use crate::server::store::suite::{self, t, Fixture, SA_TOKEN};
use crate::server::store::*;
use crate::session::SessionId;

mod migrations;

/// Whether any file in `dir` holds `needle`. SQLite may fold its `-wal` file into the database
/// and delete it at any moment after the server stops, so side files are read first and a
/// vanished one is skipped: its content is then in the database file, read last.
pub(crate) fn files_contain(dir: &std::path::Path, needle: &str) -> bool {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    paths.sort_by_key(|path| path.extension().is_some_and(|ext| ext == "db"));
    paths.iter().any(|path| match std::fs::read(path) {
        Ok(bytes) => bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => panic!("{}: {e}", path.display()),
    })
}

async fn open(dir: &Path) -> SqliteStore {
    SqliteStore::open_path(&dir.join("kms.db"), &dir.join("root.key"))
        .await
        .unwrap()
}

async fn fixture(dir: &Path) -> Fixture {
    suite::fixture(Arc::new(open(dir).await)).await
}

#[tokio::test]
async fn open_creates_private_files_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture(dir.path()).await;
    f.store.close().await;
    for name in ["kms.db", "root.key"] {
        let mode = std::fs::metadata(dir.path().join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{name} has mode {mode:o}");
    }
    let again = open(dir.path()).await;
    let project = again.ensure_project("default", t(5)).await.unwrap();
    assert_eq!(project, f.project, "the project is reused, not duplicated");
    assert_eq!(again.users().await.unwrap(), vec![f.user]);
    let token = again.account_token(&f.account).await.unwrap();
    assert_eq!(
        token.expose(),
        SA_TOKEN,
        "the reloaded root key opens old values"
    );
}

#[tokio::test]
async fn missing_root_key_with_sealed_rows_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path()).await.store.close().await;
    std::fs::remove_file(dir.path().join("root.key")).unwrap();
    let err = SqliteStore::open_url(
        &format!("sqlite://{}", dir.path().join("kms.db").display()),
        &dir.path().join("root.key"),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("root key"), "{err}");
    assert!(
        !dir.path().join("root.key").exists(),
        "no new key replaces the lost one"
    );
}

#[tokio::test]
async fn account_tokens_are_sealed_and_bound_to_their_row() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture(dir.path()).await;
    f.store.close().await;
    assert!(!files_contain(dir.path(), SA_TOKEN));
    let store = open(dir.path()).await;
    let second = store
        .create_account(NewAccount {
            project_id: f.project.id.clone(),
            resource_id: f.account.resource_id.clone(),
            name: "viewer".into(),
            description: Some("read only".into()),
            max_duration_secs: 600,
            token: Secret::new("other-token"),
            now: t(1),
        })
        .await
        .unwrap();
    // Move the first account's ciphertext into the second account's row.
    sqlx::query("UPDATE accounts SET token_sealed = (SELECT token_sealed FROM accounts WHERE id = $1) WHERE id = $2")
        .bind(&f.account.id)
        .bind(&second.id)
        .execute(&store.pool)
        .await
        .unwrap();
    let err = store.account_token(&second).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
    assert_eq!(
        store.account_token(&f.account).await.unwrap().expose(),
        SA_TOKEN
    );
}

#[tokio::test]
async fn the_ca_is_stored_sealed_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    assert!(store.ca().await.unwrap().is_none());
    let ca =
        crate::tls::CertificateAuthority::generate("test CA", Duration::from_secs(3600)).unwrap();
    let stored = StoredCa {
        cert_pem: ca.cert_pem().to_owned(),
        key: ca.key_pem().clone(),
    };
    store.save_ca(&stored).await.unwrap();
    assert!(matches!(
        store.save_ca(&stored).await,
        Err(StoreError::Conflict(_))
    ));
    let loaded = store.ca().await.unwrap().unwrap();
    assert_eq!(loaded.cert_pem, stored.cert_pem);
    assert_eq!(loaded.key.expose_secret(), stored.key.expose_secret());
    let (raw,): (Vec<u8>,) = sqlx::query_as("SELECT value FROM kms_settings WHERE name = 'ca_key'")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert!(!raw.windows(11).any(|w| w == b"PRIVATE KEY"));
}

/// A reach column someone wrote that is not the JSON KMS writes is reported as corruption,
/// naming the gateway, never read as "directly".
#[tokio::test]
async fn a_garbled_gateway_reach_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture(dir.path()).await;
    let store = open(dir.path()).await;
    sqlx::query("UPDATE gateways SET reach = '{\"relays\": 7}' WHERE id = $1")
        .bind(&f.gateway.id)
        .execute(&store.pool)
        .await
        .unwrap();
    let read = store.gateway_by_name("gw").await;
    assert!(
        matches!(read, Err(StoreError::Corrupt(ref m)) if m.contains("reach of gateway gw")),
        "{read:?}"
    );
    assert!(store.gateways().await.is_err());
}
