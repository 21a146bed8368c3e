//! A database writer moves a session: to another project, to another user, or edits where it
//! was requested from. The gateway signed all of it into `session_started` from what KMS told
//! it, and KMS into the head, so `sessions verify` names the field, on SQLite and PostgreSQL.

use std::sync::Arc;

use http::StatusCode;
use serde_json::{json, Value};

use super::backdoor::Db;
use super::events::upload;
use super::replicas::replica;
use super::{gateway_audit_key, Kms};
use crate::audit::{
    AuditEvent, AuditEventKind, AuditSink, ChainingSink, MemoryAuditSink, RequestFinished,
    RequestStarted,
};
use crate::kube::RequestInfo;
use crate::server::store::postgres::test_cluster::TestCluster;
use crate::session::{Session, SessionId, SessionStatus, SessionView};

/// The gateway's side of one session: it asks KMS about the session, signs what KMS said into
/// `session_started`, serves a request, and once KMS ended the session, signs its end.
pub(super) async fn recorded_session(kms: &Kms, gateway: &str, alice: &str) -> String {
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
    assert_eq!(
        binding.client_address.as_deref(),
        Some("127.0.0.1"),
        "{told}"
    );
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
        binding: Some(Box::new(binding)),
    });
    // `kubectl delete pod web-0`, which a rewriter would like gone.
    let path = "/api/v1/namespaces/default/pods/web-0";
    record(AuditEventKind::RequestStarted(Box::new(RequestStarted {
        request_id: 1,
        method: "DELETE".into(),
        path: path.into(),
        query: None,
        info: RequestInfo::classify(&http::Method::DELETE, path, None),
        kubectl_command: Some("kubectl delete".into()),
        kubectl_session: Some("k1".into()),
        user_agent: None,
        impersonation: None,
    })));
    record(AuditEventKind::RequestFinished(RequestFinished {
        request_id: 1,
        status: 200,
        bytes_in: 0,
        bytes_out: 10,
        duration_ms: 1,
        error: None,
    }));
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
        json!({"result": "intact", "count": 4, "sealed": true})
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
        let set = format!("UPDATE sessions SET {column} = $1 WHERE id = $2");
        db.exec(&set, &[Some(value), Some(&id)]).await;
        let verdict = verify(&kms, project, &id).await;
        assert_eq!(verdict["result"], "metadata_changed", "{column}: {verdict}");
        assert_eq!(verdict["fields"], json!([column]), "{verdict}");
        // Put back, the record is intact again.
        db.exec(&set, &[held.as_deref(), Some(&id)]).await;
        assert_eq!(verify(&kms, "default", &id).await["result"], "intact");
    }
}

#[tokio::test]
async fn a_session_moved_to_another_project_user_or_client_is_not_intact_on_sqlite() {
    let kms = Kms::start().await;
    moving_a_session_is_seen_by_verify(kms, |kms| Db::sqlite(&kms.data_dir())).await;
}

#[tokio::test]
async fn a_session_moved_to_another_project_user_or_client_is_not_intact_on_postgres() {
    let url = TestCluster::shared().fresh_database().await;
    let shared = tempfile::tempdir().unwrap();
    let kms = Kms::start_with(replica(&url, &shared.path().join("root.key"), None)).await;
    moving_a_session_is_seen_by_verify(kms, move |_| Db::postgres(&url)).await;
}
