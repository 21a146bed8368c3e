//! Session tracking at KMS: gateways upload chained events once each, linked to what is
//! stored; owners and admins read commands, verify the chain and replay recordings.

use http::StatusCode;
use serde_json::{json, Value};

use std::sync::Arc;

use super::{gateway_audit_key, Kms};
use crate::audit::{
    AuditEvent, AuditEventKind, AuditSink, ChainingSink, MemoryAuditSink, RequestFinished,
    RequestStarted,
};
use crate::kube::RequestInfo;
use crate::session::SessionId;

/// A KMS with gateways `gw` and `other`, resource `prod` on `gw`, member `alice` with a
/// session. Returns the KMS, alice's token, gw's token, other's token and the session id.
async fn world() -> (Kms, String, String, String, String) {
    let kms = Kms::start().await;
    let gateway = kms.gateway("gw").await;
    let other = kms.gateway("other").await;
    kms.resource("prod", "gw").await;
    let alice = kms.user("alice", false).await;
    kms.grant("prod", "alice", 600).await;
    let created = kms
        .open_session(&alice, "prod", 300)
        .await
        .expect(StatusCode::CREATED);
    let id = created["session"]["id"].as_str().unwrap().to_owned();
    (kms, alice, gateway, other, id)
}

/// `kubectl get pods` as a gateway records it: started and finished, chained.
pub(super) fn kubectl_get(session: &str, count: u64) -> Vec<AuditEvent> {
    let chained =
        ChainingSink::new(MemoryAuditSink::new()).with_signer(Arc::new(gateway_audit_key("gw")));
    for id in 1..=count {
        let path = "/api/v1/namespaces/default/pods";
        let started = RequestStarted {
            request_id: id,
            method: "GET".into(),
            path: path.into(),
            query: None,
            info: RequestInfo::classify(&http::Method::GET, path, None),
            kubectl_command: Some("kubectl get".into()),
            kubectl_session: Some(format!("k{id}")),
            user_agent: None,
            impersonation: None,
        };
        let finished = RequestFinished {
            request_id: id,
            status: 200,
            bytes_in: 0,
            bytes_out: 10,
            duration_ms: 1,
            error: None,
        };
        for kind in [
            AuditEventKind::RequestStarted(Box::new(started)),
            AuditEventKind::RequestFinished(finished),
        ] {
            chained
                .record(AuditEvent::now(SessionId::new(session), kind))
                .unwrap();
        }
    }
    chained.inner().events()
}

pub(super) async fn upload(kms: &Kms, token: &str, events: &[AuditEvent]) -> super::Reply {
    kms.post("/v1/gateway/events", token, json!({ "events": events }))
        .await
}

#[tokio::test]
async fn events_are_stored_once_and_read_back_as_commands() {
    let (kms, alice, gateway, _, id) = world().await;
    let events = kubectl_get(&id, 3);
    let stored = upload(&kms, &gateway, &events).await.expect(StatusCode::OK);
    assert_eq!(stored, json!({"stored": 6, "duplicates": 0}));
    let again = upload(&kms, &gateway, &events[2..])
        .await
        .expect(StatusCode::OK);
    assert_eq!(again, json!({"stored": 0, "duplicates": 4}));

    let detail = kms
        .get(&format!("/v1/sessions/{id}"), &alice)
        .await
        .expect(StatusCode::OK);
    let commands = detail["commands"].as_array().unwrap();
    assert_eq!(commands.len(), 3, "{detail}");
    assert_eq!(commands[0]["command"], "kubectl get");
    assert_eq!(commands[0]["requests"][0]["status"], 200);
    assert_eq!(commands[0]["requests"][0]["resource"], "pods");
    let status_only = kms
        .get(&format!("/v1/sessions/{id}?commands=false"), &alice)
        .await
        .expect(StatusCode::OK);
    assert_eq!(status_only["commands"], json!([]));
    let verdict = kms
        .get(&format!("/v1/sessions/{id}/verify"), &alice)
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        verdict,
        json!({"result": "intact", "count": 6, "sealed": false})
    );
}

#[tokio::test]
async fn a_batch_that_cannot_be_linked_yet_is_refused_until_the_gap_closes() {
    let (kms, _, gateway, _, id) = world().await;
    let events = kubectl_get(&id, 2);
    let early = upload(&kms, &gateway, &events[2..]).await;
    assert_eq!(early.status, StatusCode::CONFLICT);
    assert!(
        early.message().contains("cannot be linked yet"),
        "{}",
        early.message()
    );
    upload(&kms, &gateway, &events[..2])
        .await
        .expect(StatusCode::OK);
    let late = upload(&kms, &gateway, &events[2..])
        .await
        .expect(StatusCode::OK);
    assert_eq!(late["stored"], 2);

    // Another event claiming a stored seq, or a forged link, is refused.
    let clash = upload(&kms, &gateway, &kubectl_get(&id, 2)).await;
    assert_eq!(clash.status, StatusCode::CONFLICT);
    assert!(
        clash.message().contains("another event at seq 1"),
        "{}",
        clash.message()
    );
    let forged = kubectl_get(&id, 3).split_off(4);
    let unlinked = upload(&kms, &gateway, &forged).await;
    assert_eq!(unlinked.status, StatusCode::CONFLICT);
    assert!(
        unlinked.message().contains("prev_hash"),
        "{}",
        unlinked.message()
    );
}

#[tokio::test]
async fn altered_events_and_foreign_sessions_are_refused() {
    let (kms, alice, gateway, other, id) = world().await;
    let mut events = kubectl_get(&id, 1);
    let foreign = upload(&kms, &other, &events).await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN);
    let user = upload(&kms, &alice, &events).await;
    assert_eq!(user.status, StatusCode::FORBIDDEN);
    let unknown = upload(&kms, &gateway, &kubectl_get("no-such-session", 1)).await;
    assert_eq!(unknown.status, StatusCode::FORBIDDEN);

    if let AuditEventKind::RequestFinished(finished) = &mut events[1].kind {
        finished.status = 404;
    }
    let altered = upload(&kms, &gateway, &events).await;
    assert_eq!(altered.status, StatusCode::BAD_REQUEST);
    assert_eq!(altered.code(), "invalid");
    let unchained: Vec<Value> = vec![json!({"id": uuid::Uuid::new_v4(), "session_id": id,
        "time": "2027-01-15T08:00:00.000Z", "type": "session_ended", "status": "ended"})];
    let refused = kms
        .post(
            "/v1/gateway/events",
            &gateway,
            json!({ "events": unchained }),
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    let none = kms
        .get(&format!("/v1/sessions/{id}/recordings/1"), &alice)
        .await;
    assert_eq!(none.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn events_not_signed_with_the_gateways_key_are_refused() {
    let (kms, _, gateway, _, id) = world().await;
    let mut unsigned = kubectl_get(&id, 1);
    unsigned[0].sig.clear();
    let refused = upload(&kms, &gateway, &unsigned).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(
        refused
            .message()
            .contains("not signed with this gateway's audit key"),
        "{}",
        refused.message()
    );
    // Signed by the other gateway's key: refused the same way.
    let chained =
        ChainingSink::new(MemoryAuditSink::new()).with_signer(Arc::new(gateway_audit_key("other")));
    chained
        .record(AuditEvent::now(
            SessionId::new(&id),
            AuditEventKind::SessionEnded {
                status: crate::session::SessionStatus::Ended,
                ended_at: None,
                end_cause: None,
            },
        ))
        .unwrap();
    let foreign = upload(&kms, &gateway, &chained.inner().events()).await;
    assert_eq!(foreign.status, StatusCode::BAD_REQUEST);
    // A gateway cannot swap its registered key for another through the API.
    let other_key = gateway_audit_key("other").public_key();
    let swap = kms
        .post(
            "/v1/gateway/audit-key",
            &gateway,
            json!({ "public_key": other_key }),
        )
        .await;
    assert_eq!(swap.status, StatusCode::CONFLICT);
    let same = gateway_audit_key("gw").public_key();
    kms.post(
        "/v1/gateway/audit-key",
        &gateway,
        json!({ "public_key": same }),
    )
    .await
    .expect(StatusCode::OK);
}

#[tokio::test]
async fn the_gateways_end_has_kms_sign_the_head_and_the_export_verifies_offline() {
    use crate::audit::evidence::SessionBundle;
    use crate::kms::api::AuditKeys;

    let (kms, alice, gateway, _, id) = world().await;
    let mut events = kubectl_get(&id, 1);
    kms.post(&format!("/v1/sessions/{id}/end"), &alice, json!({}))
        .await
        .expect(StatusCode::OK);
    let chained = ChainingSink::resume(
        MemoryAuditSink::new(),
        [(
            SessionId::new(&id),
            crate::audit::ChainHead {
                seq: 2,
                hash: events[1].hash.clone(),
            },
        )]
        .into(),
    )
    .with_signer(Arc::new(gateway_audit_key("gw")));
    chained
        .record(AuditEvent::now(
            SessionId::new(&id),
            AuditEventKind::SessionEnded {
                status: crate::session::SessionStatus::Ended,
                ended_at: None,
                end_cause: None,
            },
        ))
        .unwrap();
    events.extend(chained.inner().events());
    upload(&kms, &gateway, &events).await.expect(StatusCode::OK);

    let detail = kms
        .get(&format!("/v1/sessions/{id}?commands=false"), &alice)
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        detail["audit"],
        json!({"events": 3, "end_received": true, "sealed": true})
    );
    let verdict = kms
        .get(&format!("/v1/sessions/{id}/verify"), &alice)
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        verdict,
        json!({"result": "intact", "count": 3, "sealed": true})
    );
    let bundle: SessionBundle = serde_json::from_value(
        kms.get(&format!("/v1/sessions/{id}/export"), &alice)
            .await
            .expect(StatusCode::OK),
    )
    .unwrap();
    let keys: AuditKeys = serde_json::from_value(
        kms.get("/v1/audit/keys", &alice)
            .await
            .expect(StatusCode::OK),
    )
    .unwrap();
    let gw_key = keys
        .gateways
        .iter()
        .find(|g| g.gateway == "gw")
        .unwrap()
        .public_key;
    assert_eq!(gw_key, gateway_audit_key("gw").public_key());
    assert!(bundle.verify(&gw_key, &keys.kms_key).is_intact());
    let listed = kms.get("/v1/gateways", &alice).await.expect(StatusCode::OK);
    assert!(listed.to_string().contains(&gw_key.to_base64()), "{listed}");
}

#[tokio::test]
async fn a_deleted_head_is_not_signed_again_from_an_edited_database() {
    let (kms, alice, gateway, _, id) = world().await;
    let mut events = kubectl_get(&id, 1);
    kms.post(&format!("/v1/sessions/{id}/end"), &alice, json!({}))
        .await
        .expect(StatusCode::OK);
    let chained = ChainingSink::resume(
        MemoryAuditSink::new(),
        [(
            SessionId::new(&id),
            crate::audit::ChainHead {
                seq: 2,
                hash: events[1].hash.clone(),
            },
        )]
        .into(),
    )
    .with_signer(Arc::new(gateway_audit_key("gw")));
    // An end the gateway recorded ten minutes ago, without KMS's view of it (it stopped first).
    let mut end = AuditEvent::now(
        SessionId::new(&id),
        AuditEventKind::SessionEnded {
            status: crate::session::SessionStatus::Ended,
            ended_at: None,
            end_cause: None,
        },
    );
    end.time -= std::time::Duration::from_secs(600);
    chained.record(end).unwrap();
    events.extend(chained.inner().events());
    upload(&kms, &gateway, &events).await.expect(StatusCode::OK);
    let path = format!("/v1/sessions/{id}/verify");
    let verify = || kms.get(&path, &alice);
    assert_eq!(
        verify().await.expect(StatusCode::OK),
        json!({"result": "intact", "count": 3, "sealed": true})
    );

    // The head deleted and the end relabelled: KMS does not sign the database's story.
    let url = format!("sqlite://{}", kms.data_dir().join("kms.db").display());
    let db = sqlx::SqlitePool::connect(&url).await.unwrap();
    for sql in [
        "DELETE FROM session_heads WHERE session_id = $1",
        "UPDATE sessions SET status = 'terminated', end_cause = 'termination' WHERE id = $1",
    ] {
        sqlx::query(sql).bind(&id).execute(&db).await.unwrap();
    }
    let verdict = verify().await.expect(StatusCode::OK);
    assert_eq!(verdict["result"], "truncated", "{verdict}");
    assert!(
        verdict["reason"]
            .as_str()
            .unwrap()
            .contains("KMS head missing"),
        "{verdict}"
    );
    let heads: Vec<(String,)> = sqlx::query_as("SELECT session_id FROM session_heads")
        .fetch_all(&db)
        .await
        .unwrap();
    assert!(heads.is_empty(), "no head signed again");
}

#[tokio::test]
async fn a_resources_recording_policy_reaches_its_gateway_with_the_credential() {
    let kms = Kms::start().await;
    let gateway = kms.gateway("gw").await;
    let body = json!({"kind": "kubernetes", "name": "lab", "gateway": "gw",
        "url": "https://10.0.0.2:6443", "ssl_verify": true,
        "recording": {"unrecorded_streams": "allow", "max_bytes": 4096,
                      "max_input_bytes": 65536}});
    kms.post("/v1/resources", &kms.admin, body)
        .await
        .expect(StatusCode::CREATED);
    let shown = kms
        .get("/v1/resources/lab", &kms.admin)
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        shown["recording"],
        json!({"unrecorded_streams": "allow", "max_bytes": 4096, "max_input_bytes": 65536})
    );
    let body = json!({"name": "admin", "token": super::SA_TOKEN, "max_duration_secs": 3600});
    kms.post("/v1/resources/lab/accounts", &kms.admin, body)
        .await
        .expect(StatusCode::CREATED);
    let created = kms
        .open_session(&kms.admin, "lab", 120)
        .await
        .expect(StatusCode::CREATED);
    let id = created["session"]["id"].as_str().unwrap();
    let credential = kms
        .get(&format!("/v1/gateway/sessions/{id}/credential"), &gateway)
        .await
        .expect(StatusCode::OK);
    assert_eq!(credential["recording"]["unrecorded_streams"], "allow");
    assert_eq!(credential["recording"]["max_input_bytes"], 65536);

    // A resource created without a policy refuses what cannot be recorded.
    kms.resource("prod", "gw").await;
    let prod = kms
        .get("/v1/resources/prod", &kms.admin)
        .await
        .expect(StatusCode::OK);
    assert_eq!(prod["recording"], json!({"unrecorded_streams": "deny"}));
    // An input cap below the recording cap makes no sense.
    let bad = json!({"kind": "kubernetes", "name": "odd", "gateway": "gw",
        "url": "https://10.0.0.3:6443", "recording": {"max_bytes": 4096, "max_input_bytes": 10}});
    let refused = kms.post("/v1/resources", &kms.admin, bad).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
}
