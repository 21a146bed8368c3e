//! PostgreSQL-only: what replicas sharing one database rely on.

use std::sync::Arc;
use std::time::Duration;

use sqlx::{Connection, PgConnection};

use crate::server::store::postgres::test_cluster::TestCluster;
use crate::server::store::postgres::PostgresStore;
use crate::server::store::suite::events::{append_as_given, appends_on};
use crate::server::store::suite::{fixture, t};
use crate::server::store::*;
use crate::session::EndCause;

/// Two stores ("replicas") on one fresh database with one shared root key.
async fn replicas() -> (Arc<dyn Store>, Arc<dyn Store>, tempfile::TempDir) {
    let url = TestCluster::shared().fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("root.key");
    let a = PostgresStore::open_url(&url, &key).await.unwrap();
    let b = PostgresStore::open_url(&url, &key).await.unwrap();
    (Arc::new(a), Arc::new(b), dir)
}

#[tokio::test]
async fn a_change_on_one_replica_is_notified_on_the_other() {
    let (a, b, _dir) = replicas().await;
    let mut on_b = b.change_notifications().await.unwrap().unwrap();
    let f = fixture(a).await;
    let created = f.session(1, 100).await;
    let seq = tokio::time::timeout(Duration::from_secs(1), on_b.recv())
        .await
        .expect("notified within a second")
        .unwrap();
    assert_eq!(Some(seq), created.seq);
}

#[tokio::test]
async fn replicas_ending_the_same_sessions_end_each_once() {
    let (a, b, _dir) = replicas().await;
    let f = fixture(a.clone()).await;
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(f.session(1, 50).await.record.session.id);
    }
    let before = a.latest_seq().await.unwrap();
    // Both replicas reap expiry and end every session by hand at the same moment.
    let mut tasks = Vec::new();
    for store in [a.clone(), b.clone()] {
        let ids = ids.clone();
        let reaper = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut ended = 0;
            for id in &ids {
                if store
                    .end_session(id, EndCause::Termination, t(10))
                    .await
                    .unwrap()
                    .seq
                    .is_some()
                {
                    ended += 1;
                }
            }
            ended
        }));
        tasks.push(tokio::spawn(async move {
            reaper.expire_sessions(t(60)).await.unwrap();
            0
        }));
    }
    let mut by_hand = 0;
    for task in tasks {
        by_hand += task.await.unwrap();
    }
    let after = a.latest_seq().await.unwrap();
    assert_eq!(after - before, 20, "one change per session");
    assert!(by_hand <= 20);
    let changes = b.changes(&f.gateway.id, before, after, 100).await.unwrap();
    let mut seen: Vec<_> = changes
        .iter()
        .map(|c| c.session_id.as_str().to_owned())
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 20, "every session ended exactly once");
}

#[tokio::test]
async fn overlapping_uploads_on_two_replicas_store_each_event_once() {
    let (a, b, _dir) = replicas().await;
    let f = fixture(a.clone()).await;
    let session = f.session(1, 100).await.record.session.id;
    let events: Vec<EventRecord> = (1..=40)
        .map(|seq| EventRecord {
            id: format!("event-{seq}"),
            session_id: session.clone(),
            seq,
            hash: format!("hash-{seq}"),
            json: "{}".to_owned(),
        })
        .collect();
    // A gateway retrying a batch on the other replica while the first attempt is in flight,
    // each attempt carrying the earlier events again and more.
    let mut tasks = Vec::new();
    for (i, store) in [a.clone(), b.clone(), a.clone(), b.clone()]
        .into_iter()
        .enumerate()
    {
        let batch = events[..10 * (i + 1)].to_vec();
        tasks.push(tokio::spawn(async move {
            append_as_given(&*store, &batch, t(2)).await.unwrap()
        }));
    }
    let mut stored = 0;
    for task in tasks {
        stored += task.await.unwrap();
    }
    assert_eq!(stored, 40, "each event stored by exactly one attempt");
    let kept = b.session_events(&session).await.unwrap();
    assert_eq!(kept.len(), 40);
    assert!(kept.iter().zip(1..).all(|(e, seq)| e.seq == seq));

    // Another event at a stored position is refused, not stored beside it.
    let forged = EventRecord {
        id: "forged".to_owned(),
        ..events[4].clone()
    };
    let err = append_as_given(&*b, &[forged], t(3)).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
}

/// Replica A is still inside the transaction storing events 11–15 of a session when the
/// gateway's next upload, 16–20, reaches replica B: B waits for A's commit and links to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consecutive_uploads_on_two_replicas_link_not_refused() {
    let (a, b, _dir) = replicas().await;
    appends_on(a, b).await;
}

/// Waits until `n` statements of this database wait for a lock; false after 10 s.
async fn lock_waits(conn: &mut PgConnection, n: i64) -> bool {
    for _ in 0..500 {
        let (waiting,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
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

/// A revocation still inside its transaction (another replica deleting the grant, removing the
/// membership, disabling the user) when a session is requested that it takes away: the request
/// waits for it, then stores nothing. Were it stored from what it read before the revocation
/// committed, the revocation's `end_sessions`, running before the session committed, would
/// miss it and leave it active.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_requested_during_a_revocation_waits_for_it_and_is_refused() {
    let url = TestCluster::shared().fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    let store = PostgresStore::open_url(&url, &dir.path().join("root.key"))
        .await
        .unwrap();
    let f = fixture(Arc::new(store)).await;
    let mut watcher = PgConnection::connect(&url).await.unwrap();
    let revocations = [
        ("grant deleted", "DELETE FROM grants WHERE user_id = $1"),
        (
            "membership removed",
            "DELETE FROM project_members WHERE user_id = $1",
        ),
        (
            "user disabled",
            "UPDATE users SET disabled_at = 1 WHERE id = $1",
        ),
        (
            "demoted to auditor",
            "UPDATE project_members SET role = 'auditor' WHERE user_id = $1",
        ),
    ];
    for (i, (what, sql)) in revocations.into_iter().enumerate() {
        let (user, grant) = f.granted_member(&format!("user{i}")).await;
        let mut conn = PgConnection::connect(&url).await.unwrap();
        let mut revocation = conn.begin().await.unwrap();
        sqlx::query(sql)
            .bind(&user.id)
            .execute(&mut *revocation)
            .await
            .unwrap();
        let commit_when_waited_for = async {
            let waited = lock_waits(&mut watcher, 1).await;
            revocation.commit().await.unwrap();
            waited
        };
        let (created, waited) = tokio::join!(
            f.try_session(&user, Some(&grant.id)),
            commit_when_waited_for
        );
        assert!(
            waited,
            "{what}: the request did not wait for the revocation"
        );
        assert!(
            matches!(created, Err(StoreError::Conflict(_))),
            "{what}: {:?}",
            created.map(|u| u.record.session.id)
        );
    }
}
