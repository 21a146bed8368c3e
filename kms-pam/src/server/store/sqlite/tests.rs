//! SQLite store tests: opening, sealing, uniqueness; `lifecycle` covers enrollment and sessions.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::*;
use crate::secret::Secret;
use crate::server::store::crypto::issue_token;
use crate::server::store::*;
use crate::session::{EndCause, SessionId, SessionStatus};

mod lifecycle;
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

const SA_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.sa-token-at-rest-7f3c";

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

async fn open(dir: &Path) -> SqliteStore {
    SqliteStore::open_path(&dir.join("kms.db"), &dir.join("root.key"))
        .await
        .unwrap()
}

/// A project with a user, an enrolled gateway, a resource and an account.
struct Fixture {
    store: SqliteStore,
    project: ProjectRecord,
    user: UserRecord,
    gateway: GatewayRecord,
    account: AccountRecord,
}

async fn fixture(dir: &Path) -> Fixture {
    let store = open(dir).await;
    let project = store.ensure_project("default", t(0)).await.unwrap();
    let (_, hash) = issue_token("kmsu_").unwrap();
    let user = store
        .create_user(NewUser {
            name: "alice".into(),
            admin: false,
            token: hash,
            now: t(0),
        })
        .await
        .unwrap();
    let (_, enrollment) = issue_token("kmse_").unwrap();
    let gateway = store
        .create_gateway(NewGateway {
            name: "gw".into(),
            enrollment,
            enrollment_expires_at: t(3600),
            now: t(0),
        })
        .await
        .unwrap();
    let resource = store
        .create_resource(NewResource {
            project_id: project.id.clone(),
            name: "prod".into(),
            kind: "kubernetes".into(),
            url: "https://10.0.0.1:6443".into(),
            gateway_id: gateway.id.clone(),
            ssl_verify: true,
            ca_cert: None,
            now: t(0),
        })
        .await
        .unwrap();
    let account = store
        .create_account(NewAccount {
            project_id: project.id.clone(),
            resource_id: resource.id.clone(),
            name: "admin".into(),
            description: None,
            max_duration_secs: 3600,
            token: Secret::new(SA_TOKEN),
            now: t(0),
        })
        .await
        .unwrap();
    Fixture {
        store,
        project,
        user,
        gateway,
        account,
    }
}

impl Fixture {
    async fn session(&self, created: u64, expires: u64) -> SessionUpdate {
        self.store
            .create_session(NewSessionRecord {
                id: SessionId::new_random(),
                project_id: self.project.id.clone(),
                user: self.user.clone(),
                account: self.account.clone(),
                gateway: self.gateway.clone(),
                grant_id: None,
                reason: Some("debug".into()),
                created_at: t(created),
                expires_at: t(expires),
            })
            .await
            .unwrap()
    }
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
async fn names_are_unique_and_lookups_report_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture(dir.path()).await;
    let (_, hash) = issue_token("kmsu_").unwrap();
    let dup = f
        .store
        .create_user(NewUser {
            name: "alice".into(),
            admin: true,
            token: hash,
            now: t(1),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(dup, StoreError::Conflict(ref m) if m.contains("alice")),
        "{dup}"
    );
    let missing = f.store.user_by_name("bob").await.unwrap_err();
    assert!(matches!(missing, StoreError::NotFound(_)));
    let grant = NewGrant {
        project_id: f.project.id.clone(),
        account_id: f.account.id.clone(),
        user_id: f.user.id.clone(),
        max_duration_secs: 600,
        now: t(1),
    };
    let created = f.store.create_grant(grant.clone()).await.unwrap();
    assert_eq!(
        (created.resource.as_str(), created.account.as_str()),
        ("prod", "admin")
    );
    assert!(matches!(
        f.store.create_grant(grant).await,
        Err(StoreError::Conflict(_))
    ));
    let found = f.store.grant_for(&f.account.id, &f.user.id).await.unwrap();
    assert_eq!(found, Some(created));
}

#[tokio::test]
async fn deleting_a_resource_removes_accounts_and_grants_but_keeps_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture(dir.path()).await;
    let grant = NewGrant {
        project_id: f.project.id.clone(),
        account_id: f.account.id.clone(),
        user_id: f.user.id.clone(),
        max_duration_secs: 600,
        now: t(1),
    };
    f.store.create_grant(grant).await.unwrap();
    let session = f.session(1, 100).await.record;
    f.store
        .delete_resource(&f.project.id, "prod")
        .await
        .unwrap();
    assert!(f
        .store
        .accounts(&f.project.id, None)
        .await
        .unwrap()
        .is_empty());
    assert!(f
        .store
        .grants(&f.project.id, None)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(f.store.session(&session.session.id).await.unwrap(), session);
    let again = f.store.delete_resource(&f.project.id, "prod").await;
    assert!(matches!(again, Err(StoreError::NotFound(_))));
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
