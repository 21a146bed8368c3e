//! First start, restart, and the refusals around the root key.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use http::StatusCode;

use super::Kms;
use crate::server::{Server, ServerConfig, ServerError};

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn first_start_creates_private_state_and_a_working_admin() {
    let kms = Kms::start().await;
    let data = kms.data_dir();
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("admin.token")), 0o600);
    assert_eq!(mode(&data.join("root.key")), 0o600);
    assert_eq!(fs::metadata(data.join("root.key")).unwrap().len(), 32);
    assert!(kms.admin.starts_with("kmsu_"));
    let me = kms
        .get("/v1/whoami", &kms.admin)
        .await
        .expect(StatusCode::OK);
    assert_eq!(me["name"], "admin");
    assert_eq!(
        (me["kind"].as_str(), me["admin"].as_bool()),
        (Some("user"), Some(true))
    );
    let health = kms
        .call(
            http::Method::GET,
            "/v1/healthz",
            None,
            serde_json::Value::Null,
        )
        .await;
    assert_eq!(health.expect(StatusCode::OK)["status"], "ok");
    for (path, status) in [("/healthz", "ok"), ("/readyz", "ready")] {
        let answer = kms.call(http::Method::GET, path, None, serde_json::Value::Null);
        assert_eq!(
            answer.await.expect(StatusCode::OK)["status"],
            status,
            "{path}"
        );
    }
}

#[tokio::test]
async fn a_restart_reuses_the_admin_the_ca_and_the_data() {
    let kms = Kms::start().await;
    let (admin, ca) = (kms.admin.clone(), kms.ca_pem.clone());
    kms.pending_gateway("gw").await;
    let dir = kms.stop().await;
    let config = ServerConfig::new(Kms::data_dir_of(dir.path()));
    let reopened = Server::open(config.clone()).await.unwrap();
    assert!(!reopened.admin_created());
    assert_eq!(reopened.admin_token_path(), config.admin_token_path());
    drop(reopened);
    let kms = Kms::start_in(dir).await;
    assert_eq!(kms.admin, admin, "admin.token is not rewritten");
    assert_eq!(kms.ca_pem, ca, "the CA is reused");
    let gateways = kms.get("/v1/gateways", &admin).await.expect(StatusCode::OK);
    assert_eq!(gateways[0]["name"], "gw");
    assert_eq!(gateways[0]["status"], "pending");
    kms.stop().await;
}

#[tokio::test]
async fn first_open_reports_the_token_path() {
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig::new(dir.path().join("nested/data"));
    let server = Server::open(config.clone()).await.unwrap();
    assert!(server.admin_created());
    assert_eq!(
        server.admin_token_path(),
        dir.path().join("nested/data/admin.token")
    );
    assert!(fs::read_to_string(server.admin_token_path())
        .unwrap()
        .starts_with("kmsu_"));
}

#[tokio::test]
async fn an_unsafe_or_lost_root_key_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig::new(dir.path().join("data"));
    drop(Server::open(config.clone()).await.unwrap());
    let key = config.root_key_path();
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    let err = Server::open(config.clone()).await.err().unwrap();
    assert!(err.to_string().contains("chmod 600"), "{err}");
    fs::remove_file(&key).unwrap();
    let err = Server::open(config.clone()).await.err().unwrap();
    assert!(err.to_string().contains("root key"), "{err}");
    assert!(!key.exists());
}

#[tokio::test]
async fn other_databases_are_refused_without_echoing_the_url() {
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig::new(dir.path().join("data"))
        .with_database(Some("mysql://kms:hunter2@db/kms".to_owned()));
    let err = Server::open(config).await.err().unwrap();
    assert!(matches!(err, ServerError::UnsupportedDatabase { .. }));
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[tokio::test]
async fn an_explicit_sqlite_url_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("elsewhere.db");
    let config = ServerConfig::new(dir.path().join("data"))
        .with_database(Some(format!("sqlite://{}", db.display())));
    Server::open(config).await.unwrap();
    assert!(db.exists());
    assert!(!dir.path().join("data/kms.db").exists());
}

#[tokio::test]
async fn replicas_on_one_postgres_database_share_the_ca_and_the_admin() {
    let url = crate::server::store::postgres::test_cluster::TestCluster::shared()
        .fresh_database()
        .await;
    let shared = tempfile::tempdir().unwrap();
    let key = shared.path().join("root.key");
    let replica = |name: &str| {
        ServerConfig::new(shared.path().join(name))
            .with_database(Some(url.clone()))
            .with_root_key(Some(key.clone()))
    };
    let a = Server::open(replica("a")).await.unwrap();
    let b = Server::open(replica("b")).await.unwrap();
    assert!(
        a.admin_created() && !b.admin_created(),
        "one admin for all replicas"
    );
    assert_eq!(a.ca_certificate_pem(), b.ca_certificate_pem());
    assert_eq!(mode(&key), 0o600);
    assert!(!shared.path().join("a/root.key").exists());

    // A replica given another key cannot open the CA the first one sealed.
    let stranger = ServerConfig::new(shared.path().join("c"))
        .with_database(Some(url.clone()))
        .with_root_key(Some(shared.path().join("other.key")));
    let err = Server::open(stranger).await.err().unwrap();
    assert!(err.to_string().contains("root key"), "{err}");
}

#[tokio::test]
async fn keys_mounted_read_only_need_the_endorsement_marker_mounted_with_them() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    crate::fsutil::create_private_dir(&keys).unwrap();
    let config =
        ServerConfig::new(dir.path().join("data")).with_root_key(Some(keys.join("root.key")));
    drop(Server::open(config.clone()).await.unwrap());
    let marker = keys.join("audit-keys-endorsed");
    assert!(marker.exists(), "written beside the keys when it can be");
    // Where it cannot be written (a read-only mount; here a link into nowhere), the start
    // stops and says what to mount.
    std::fs::remove_file(&marker).unwrap();
    std::os::unix::fs::symlink(dir.path().join("nowhere/marker"), &marker).unwrap();
    let err = Server::open(config.clone())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("mount this file with them"), "{err}");
    // Mounted with them, it is only read.
    std::fs::remove_file(&marker).unwrap();
    std::fs::write(&marker, "new install: nothing to endorse\n").unwrap();
    drop(Server::open(config).await.unwrap());
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap(),
        "new install: nothing to endorse\n"
    );
}
