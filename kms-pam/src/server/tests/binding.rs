//! A database writer moves a session: to another project, to another user, or edits where it
//! was requested from. The gateway signed all of it into `session_started` from what KMS told
//! it, and KMS into the head, so `sessions verify` names the field, on SQLite and PostgreSQL.

use std::sync::Arc;

use http::StatusCode;
use serde_json::{json, Value};

use super::events::upload;
use super::replicas::replica;
use super::{gateway_audit_key, Kms};
use crate::audit::{AuditEvent, AuditEventKind, AuditSink, ChainingSink, MemoryAuditSink};
use crate::server::store::postgres::test_cluster::TestCluster;
use crate::session::{Session, SessionId, SessionStatus, SessionView};

/// The database, opened behind KMS's back.
enum Db {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Db {
    /// Sets `column` of session `id` to `value` (`None`: NULL).
    async fn set(&self, column: &str, value: Option<&str>, id: &str) {
        let sql = format!("UPDATE sessions SET {column} = $1 WHERE id = $2");
        match self {
            Self::Sqlite(db) => {
                sqlx::query(&sql).bind(value).bind(id).execute(db).await.unwrap();
            }
            Self::Postgres(db) => {
                sqlx::query(&sql).bind(value).bind(id).execute(db).await.unwrap();
            }
        }
    }

    async fn text(&self, sql: &str, id: &str) -> Option<String> {
        match self {
            Self::Sqlite(db) => sqlx::query_scalar(sql).bind(id).fetch_one(db).await,
            Self::Postgres(db) => sqlx::query_scalar(sql).bind(id).fetch_one(db).await,
        }
        .unwrap()
    }
}

/// The gateway's side of one session: it asks KMS about the session, signs what KMS said into
/// `session_started`, serves a request, and once KMS ended the session, signs its end.
async fn recorded_session(kms: &Kms, gateway: &str, alice: &str) -> String {
    let created = kms
        .open_session(alice, "prod", 300)
        .await
        .expect(StatusCode::CREATED);
    let id = created["session"]["id"].as_str().unwrap().to_owned();
    let told = kms
        .get(&format!("/v1/gateway/sessions/{id}"), gateway)
        .await
        .expect(StatusCode::OK);
    let session: Session = serde_json::from_value::<SessionView>(told.clone())
        .unwrap()
        .session;
    let binding = session.binding.clone().expect("KMS binds the session");
    assert_eq!(binding.client_address.as_deref(), Some("127.0.0.1"), "{told}");
    let chained =
        ChainingSink::new(MemoryAuditSink::new()).with_signer(Arc::new(gateway_audit_key("gw")));
    let record = |kind| {
        chained
            .record(AuditEvent::now(SessionId::new(&id), kind))
            .unwrap();
    };
    record(AuditEventKind::SessionStarted {
        user: session.user.clone(),
        resource: session.resource.clone(),
        account: session.account.clone(),
        gateway: session.gateway.clone(),
        reason: session.reason.clone(),
        created_at: Some(session.created_at),
        expires_at: Some(session.expires_at),
        binding: Some(binding),
    });
    let ended = kms
        .post(&format!("/v1/sessions/{id}/end"), alice, json!({}))
        .await
        .expect(StatusCode::OK);
    let ended: SessionView = serde_json::from_value(ended).unwrap();
    record(AuditEventKind::SessionEnded {
        status: SessionStatus::Ended,
        ended_at: ended.session.ended_at,
        end_cause: Some("user".into()),
    });
    upload(kms, gateway, &chained.inner().events())
        .await
        .expect(StatusCode::OK);
    id
}

async fn verify(kms: &Kms, project: &str, id: &str) -> Value {
    let path = format!("/v1/projects/{project}/sessions/{id}/verify");
    kms.get(&path, &kms.admin).await.expect(StatusCode::OK)
}

async fn moving_a_session_is_seen_by_verify(kms: Kms, db: impl FnOnce(&Kms) -> Db) {
    let gateway = kms.gateway("gw").await;
    kms.resource("prod", "gw").await;
    let alice = kms.user("alice", false).await;
    kms.user("mallory", false).await;
    kms.grant("prod", "alice", 600).await;
    kms.project("other").await;
    let db = db(&kms);
    let id = recorded_session(&kms, &gateway, &alice).await;
    assert_eq!(
        verify(&kms, "default", &id).await,
        json!({"result": "intact", "count": 2, "sealed": true})
    );

    let other = db
        .text("SELECT id FROM projects WHERE name = $1", "other")
        .await
        .unwrap();
    let mallory = db
        .text("SELECT id FROM users WHERE name = $1", "mallory")
        .await
        .unwrap();
    let edits = [
        ("project_id", other.as_str(), "other"),
        ("user_id", mallory.as_str(), "default"),
        ("client_address", "203.0.113.50", "default"),
        ("user_agent", "kubectl/v1.32.0", "default"),
    ];
    for (column, value, project) in edits {
        let held = db
            .text(&format!("SELECT {column} FROM sessions WHERE id = $1"), &id)
            .await;
        db.set(column, Some(value), &id).await;
        let verdict = verify(&kms, project, &id).await;
        assert_eq!(verdict["result"], "metadata_changed", "{column}: {verdict}");
        assert_eq!(verdict["fields"], json!([column]), "{verdict}");
        // Put back, the record is intact again.
        db.set(column, held.as_deref(), &id).await;
        assert_eq!(verify(&kms, "default", &id).await["result"], "intact");
    }
}

#[tokio::test]
async fn a_session_moved_to_another_project_user_or_client_is_not_intact_on_sqlite() {
    let kms = Kms::start().await;
    moving_a_session_is_seen_by_verify(kms, |kms| {
        let url = format!("sqlite://{}", kms.data_dir().join("kms.db").display());
        Db::Sqlite(sqlx::SqlitePool::connect_lazy(&url).unwrap())
    })
    .await;
}

#[tokio::test]
async fn a_session_moved_to_another_project_user_or_client_is_not_intact_on_postgres() {
    let url = TestCluster::shared().fresh_database().await;
    let shared = tempfile::tempdir().unwrap();
    let kms = Kms::start_with(replica(&url, &shared.path().join("root.key"), None)).await;
    moving_a_session_is_seen_by_verify(kms, move |_| {
        Db::Postgres(sqlx::PgPool::connect_lazy(&url).unwrap())
    })
    .await;
}
