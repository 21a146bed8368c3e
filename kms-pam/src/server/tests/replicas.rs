//! Two replicas on one PostgreSQL database, over HTTP: a gateway's uploads of one session that
//! alternate between them are serialised per session, never refused for a gap about to close.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use serde_json::json;
use sqlx::{Connection, PgConnection};

use super::events::{kubectl_get, upload};
use super::Kms;
use crate::server::store::postgres::test_cluster::TestCluster;
use crate::server::store::postgres::{event_lock_key, EVENT_APPEND_LOCK};
use crate::server::ServerConfig;
use crate::session::SessionId;

/// A replica's configuration on `url` with the shared root key `key`; given `admin` (the token
/// the first replica wrote), it is put where [`Kms`] reads it.
pub(super) fn replica(
    url: &str,
    key: &std::path::Path,
    admin: Option<&str>,
) -> impl FnOnce(ServerConfig) -> ServerConfig {
    let (url, key, admin) = (url.to_owned(), key.to_owned(), admin.map(str::to_owned));
    move |config| {
        if let Some(admin) = admin {
            let path = config.admin_token_path();
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, admin).unwrap();
        }
        config.with_database(Some(url)).with_root_key(Some(key))
    }
}

/// Waits until `n` appends wait for an event append lock in this database; false after 30 s.
async fn appends_waiting(conn: &mut PgConnection, n: i64) -> bool {
    for _ in 0..1_500 {
        let (waiting,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted \
             AND objsubid = 2 AND classid::bigint = $1 \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .bind(i64::from(EVENT_APPEND_LOCK))
        .fetch_one(&mut *conn)
        .await
        .unwrap();
        if waiting >= n {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Replica A is still inside the transaction of the session's upload of events 11–15 (the test
/// holds the session's append lock, so A's upload stops at it) when the next upload, 16–20,
/// reaches replica B. B's must wait behind A's and then continue its chain: both stored, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_of_one_session_alternating_between_replicas_wait_for_each_other() {
    let url = TestCluster::shared().fresh_database().await;
    let shared = tempfile::tempdir().unwrap();
    let key = shared.path().join("root.key");
    let a = Kms::start_with(replica(&url, &key, None)).await;
    let b = Kms::start_with(replica(&url, &key, Some(&a.admin))).await;
    let gateway = a.gateway("gw").await;
    a.resource("prod", "gw").await;
    let alice = a.user("alice", false).await;
    a.grant("prod", "alice", 600).await;
    let created = a
        .open_session(&alice, "prod", 300)
        .await
        .expect(StatusCode::CREATED);
    let id = created["session"]["id"].as_str().unwrap().to_owned();
    let events = kubectl_get(&id, 10);
    assert_eq!(events.len(), 20);
    let stored = upload(&b, &gateway, &events[..10])
        .await
        .expect(StatusCode::OK);
    assert_eq!(stored, json!({"stored": 10, "duplicates": 0}));

    let mut holder = PgConnection::connect(&url).await.unwrap();
    let mut held = holder.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
        .bind(EVENT_APPEND_LOCK)
        .bind(event_lock_key(&SessionId::new(id.clone())))
        .execute(&mut *held)
        .await
        .unwrap();
    let (a, b) = (Arc::new(a), Arc::new(b));
    let send = |kms: &Arc<Kms>, batch: &[crate::audit::AuditEvent]| {
        let (kms, gateway, batch) = (kms.clone(), gateway.clone(), batch.to_vec());
        tokio::spawn(async move { upload(&kms, &gateway, &batch).await })
    };
    let on_a = send(&a, &events[10..15]);
    assert!(
        appends_waiting(&mut held, 1).await,
        "replica A's upload did not wait for the session's append lock"
    );
    let on_b = send(&b, &events[15..]);
    assert!(
        appends_waiting(&mut held, 2).await,
        "replica B's upload did not wait behind replica A's"
    );
    held.commit().await.unwrap();

    let stored = json!({"stored": 5, "duplicates": 0});
    assert_eq!(on_a.await.unwrap().expect(StatusCode::OK), stored);
    assert_eq!(
        on_b.await.unwrap().expect(StatusCode::OK),
        stored,
        "B linked to A's events"
    );
    let (count, seqs, last): (i64, i64, Option<i64>) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT seq), max(seq) FROM session_events WHERE session_id = $1",
    )
    .bind(&id)
    .fetch_one(&mut holder)
    .await
    .unwrap();
    assert_eq!((count, seqs, last), (20, 20, Some(20)));
    let again = upload(&a, &gateway, &events).await.expect(StatusCode::OK);
    assert_eq!(again, json!({"stored": 0, "duplicates": 20}));
}
