//! Upgrading a database written before projects and revocation (migrations 1-2) keeps every
//! row in `default` and its users working.

use std::borrow::Cow;
use std::time::UNIX_EPOCH;

use sqlx::migrate::Migrator;
use sqlx::sqlite::SqliteConnectOptions;

use super::*;
use crate::kms::api::ProjectRole;

#[tokio::test]
async fn an_old_database_is_upgraded_with_its_rows_in_default() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kms.db");
    let options = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    let old = Migrator {
        migrations: Cow::Owned(
            MIGRATOR
                .iter()
                .filter(|m| m.version <= 2)
                .cloned()
                .collect(),
        ),
        ..Migrator::DEFAULT
    };
    old.run(&pool).await.unwrap();
    for sql in [
        "INSERT INTO projects VALUES ('p0', 'default', 1)",
        "INSERT INTO users VALUES ('u1', 'admin', 1, 'h1', 1)",
        "INSERT INTO users VALUES ('u2', 'bob', 0, 'h2', 2)",
        "INSERT INTO users VALUES ('u3', 'Bob', 0, 'h3', 3)",
        "INSERT INTO gateways (id, name, token_hash, address, created_at) \
         VALUES ('g1', 'gw', 'hg', '127.0.0.1:1', 1)",
        "INSERT INTO resources VALUES ('r1', 'p0', 'prod', 'kubernetes', 'https://k', 'g1', 1, \
         NULL, 1)",
        "INSERT INTO sessions (id, project_id, user_id, user_name, resource_id, resource_name, \
         account_id, account_name, gateway_id, gateway_name, status, created_at, expires_at) \
         VALUES ('s1', 'p0', 'u2', 'bob', 'r1', 'prod', 'a1', 'admin', 'g1', 'gw', 'active', \
         100, 4000000000)",
    ] {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    pool.close().await;

    let store = SqliteStore::open_path(&path, &dir.path().join("root.key"))
        .await
        .unwrap();
    let default = store.project("default").await.unwrap();
    assert_eq!(default.id, "p0");
    assert_eq!(store.resources("p0").await.unwrap()[0].name, "prod");
    let members: Vec<(String, ProjectRole)> = store
        .members("p0")
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.user, m.role))
        .collect();
    assert_eq!(
        members,
        vec![
            ("Bob-u3".to_owned(), ProjectRole::Member),
            ("bob".to_owned(), ProjectRole::Member)
        ],
        "non-admins stay in default; the younger of two names differing by case is renamed"
    );
    assert_eq!(store.user_by_name("BOB").await.unwrap().id, "u2");
    assert!(!store.user_by_name("admin").await.unwrap().disabled);
    let session = store.session(&SessionId::new("s1")).await.unwrap();
    assert_eq!(session.grant_id, None);
    assert_eq!(session.last_seen_at, UNIX_EPOCH + Duration::from_secs(100));
    let gateway = store.gateway_by_name("gw").await.unwrap();
    assert!(!gateway.revoked);
    assert_eq!(
        gateway.reach,
        crate::kms::api::GatewayReach::default(),
        "a gateway from before 0830 is reached directly"
    );
}

/// Issue 28 point 6: the upgrade to gateway scope stops nothing that worked: every gateway
/// serves `default` and each project that has a resource on it, with no URL limit.
#[tokio::test]
async fn gateways_keep_serving_the_projects_that_have_resources_on_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kms.db");
    let options = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    let old = Migrator {
        migrations: Cow::Owned(
            MIGRATOR
                .iter()
                .filter(|m| m.version < 800)
                .cloned()
                .collect(),
        ),
        ..Migrator::DEFAULT
    };
    old.run(&pool).await.unwrap();
    for sql in [
        "INSERT INTO projects (id, name, created_at) VALUES ('p0', 'default', 1)",
        "INSERT INTO projects (id, name, created_at) VALUES ('pa', 'team-a', 1)",
        "INSERT INTO projects (id, name, created_at) VALUES ('pb', 'team-b', 1)",
        "INSERT INTO gateways (id, name, created_at) VALUES ('g1', 'gw1', 1)",
        "INSERT INTO gateways (id, name, created_at) VALUES ('g2', 'gw2', 1)",
        "INSERT INTO resources (id, project_id, name, kind, url, gateway_id, ssl_verify, \
         created_at) VALUES ('r1', 'pa', 'prod', 'kubernetes', 'https://k', 'g1', 1, 1)",
        "INSERT INTO resources (id, project_id, name, kind, url, gateway_id, ssl_verify, \
         created_at) VALUES ('r2', 'pa', 'dev', 'kubernetes', 'https://k', 'g1', 1, 1)",
    ] {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    pool.close().await;

    let store = SqliteStore::open_path(&path, &dir.path().join("root.key"))
        .await
        .unwrap();
    let mut assigned = store.gateway_projects().await.unwrap();
    assigned.sort();
    assert_eq!(
        assigned,
        [
            ("g1".to_owned(), "default".to_owned()),
            ("g1".to_owned(), "team-a".to_owned()),
            ("g2".to_owned(), "default".to_owned()),
        ]
    );
    assert!(store.gateway_serves("g1", "pa").await.unwrap());
    assert!(!store.gateway_serves("g1", "pb").await.unwrap());
    assert!(store.gateway_serves("g2", "p0").await.unwrap());
    assert!(store
        .gateway_by_name("gw1")
        .await
        .unwrap()
        .allowed_url_hosts
        .is_empty());
}
