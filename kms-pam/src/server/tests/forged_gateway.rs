//! The database writer's forged "intact" (issue 28, point 1): a gateway row with a token hash
//! of their choosing authenticates as a gateway, registers their own audit key (KMS endorses
//! it), the session is pointed at that gateway, its history rewritten and re-signed with their
//! key and its head deleted; then they make KMS sign a fresh head — by reading the session, or
//! by uploading a re-signed end as the forged gateway — and restore the session's gateway and
//! delete the forged row. KMS must not vouch for the rewritten history, on SQLite and
//! PostgreSQL.

use http::StatusCode;
use serde_json::{json, Value};

use super::backdoor::Db;
use super::binding::recorded_session;
use super::replicas::replica;
use super::Kms;
use crate::audit::evidence::chain::event_hash;
use crate::audit::evidence::signing::{event_message, SigningKey};
use crate::audit::AuditEvent;
use crate::server::store::postgres::test_cluster::TestCluster;
use crate::server::store::TokenHash;

const FORGED_TOKEN: &str = "kmsg_chosen-by-the-database-writer-0123456789";

/// The session's events with `kubectl delete` turned into a `get`, re-hashed and every event
/// re-signed with `key`; written back. `drop_end`: the gateway's end is deleted instead of
/// re-signed (the forged gateway will upload one). Returns the re-signed end, if dropped.
async fn rewrite(db: &Db, id: &str, key: &SigningKey, drop_end: bool) -> Option<Value> {
    let stored = db.events(id).await;
    let mut events: Vec<Value> = stored
        .iter()
        .map(|(_, json)| serde_json::from_str(json).unwrap())
        .collect();
    for event in &mut events {
        if event["type"] == "request_started" && event["method"] == "DELETE" {
            event["method"] = Value::from("GET");
            event["info"]["verb"] = Value::from("get");
            event["kubectl_command"] = Value::from("kubectl get");
        }
    }
    for i in 0..events.len() {
        if i > 0 {
            events[i]["prev_hash"] = events[i - 1]["hash"].clone();
        }
        let parsed: AuditEvent = serde_json::from_value(events[i].clone()).unwrap();
        let hash = event_hash(&parsed).unwrap();
        events[i]["sig"] = Value::from(key.sign(&event_message(&hash)));
        events[i]["hash"] = Value::from(hash);
    }
    let mut dropped = None;
    for ((event_id, _), event) in stored.iter().zip(&events) {
        if drop_end && event["type"] == "session_ended" {
            let sql = "DELETE FROM session_events WHERE id = $1";
            db.exec(sql, &[Some(event_id)]).await;
            dropped = Some(event.clone());
            continue;
        }
        let sql = "UPDATE session_events SET event = $1, hash = $2 WHERE id = $3";
        let hash = event["hash"].as_str().unwrap();
        let json = event.to_string();
        db.exec(sql, &[Some(&json), Some(hash), Some(event_id)])
            .await;
    }
    dropped
}

async fn verify(kms: &Kms, id: &str) -> Value {
    let path = format!("/v1/sessions/{id}/verify");
    kms.get(&path, &kms.admin).await.expect(StatusCode::OK)
}

async fn kms_does_not_bless_a_history_re_signed_under_a_forged_gateway(kms: Kms, db: Db) {
    let gateway = kms.gateway("gw").await;
    kms.resource("prod", "gw").await;
    let alice = kms.user("alice", false).await;
    kms.grant("prod", "alice", 600).await;
    let (read, uploaded) = (
        recorded_session(&kms, &gateway, &alice).await,
        recorded_session(&kms, &gateway, &alice).await,
    );
    for id in [&read, &uploaded] {
        assert_eq!(
            verify(&kms, id).await,
            json!({"result": "intact", "count": 4, "sealed": true})
        );
    }
    let real_gateway = db
        .text("SELECT gateway_id FROM sessions WHERE id = $1", &read)
        .await
        .unwrap();

    // A gateway row whose token hash the writer chose; KMS endorses the key it registers.
    let hash = TokenHash::of(FORGED_TOKEN);
    db.exec(
        "INSERT INTO gateways (id, name, address, token_hash, enrolled_at, created_at) \
         VALUES ('forged-gw', 'forged', '10.6.6.6:8443', $1, 1800000000, 1800000000)",
        &[Some(hash.as_str())],
    )
    .await;
    let (attacker, _) = SigningKey::generate().unwrap();
    let registered = kms
        .post(
            "/v1/gateway/audit-key",
            FORGED_TOKEN,
            json!({ "public_key": attacker.public_key() }),
        )
        .await;
    for id in [&read, &uploaded] {
        db.exec(
            "UPDATE sessions SET gateway_id = 'forged-gw' WHERE id = $1",
            &[Some(id)],
        )
        .await;
        db.exec(
            "DELETE FROM session_heads WHERE session_id = $1",
            &[Some(id)],
        )
        .await;
    }

    // One way: rewrite everything, then a read of the session.
    rewrite(&db, &read, &attacker, false).await;
    let _ = kms
        .get(&format!("/v1/sessions/{read}/verify"), &kms.admin)
        .await;
    // The other: rewrite all but the end, which the forged gateway uploads, re-signed.
    let end = rewrite(&db, &uploaded, &attacker, true).await.unwrap();
    let delivered = kms
        .post(
            "/v1/gateway/events",
            FORGED_TOKEN,
            json!({ "events": [end] }),
        )
        .await;

    assert_eq!(
        delivered.status,
        StatusCode::FORBIDDEN,
        "the forged gateway's end: {}",
        delivered.json
    );
    assert!(
        delivered.message().contains("was bound to gateway key"),
        "{}",
        delivered.json
    );

    // The traces removed.
    for id in [&read, &uploaded] {
        db.exec(
            "UPDATE sessions SET gateway_id = $1 WHERE id = $2",
            &[Some(&real_gateway), Some(id)],
        )
        .await;
    }
    db.exec(
        "DELETE FROM gateway_audit_keys WHERE gateway_id = 'forged-gw'",
        &[],
    )
    .await;
    db.exec("DELETE FROM gateways WHERE id = 'forged-gw'", &[])
        .await;

    for id in [&read, &uploaded] {
        let verdict = verify(&kms, id).await;
        assert_eq!(
            verdict["result"], "altered",
            "KMS vouched for a rewritten history (audit-key registration answered {}): \
             {verdict}",
            registered.status
        );
        assert_eq!(verdict["seq"], 1, "the first re-signed event: {verdict}");
        let heads = db
            .text(
                "SELECT COUNT(*) || '' FROM session_heads WHERE session_id = $1",
                id,
            )
            .await;
        assert_eq!(heads.as_deref(), Some("0"), "no head signed over it");
    }
}

#[tokio::test]
async fn a_forged_gateway_cannot_make_kms_vouch_for_a_rewritten_record_on_sqlite() {
    let kms = Kms::start().await;
    let db = Db::sqlite(&kms.data_dir());
    kms_does_not_bless_a_history_re_signed_under_a_forged_gateway(kms, db).await;
}

#[tokio::test]
async fn a_forged_gateway_cannot_make_kms_vouch_for_a_rewritten_record_on_postgres() {
    let url = TestCluster::shared().fresh_database().await;
    let shared = tempfile::tempdir().unwrap();
    let kms = Kms::start_with(replica(&url, &shared.path().join("root.key"), None)).await;
    kms_does_not_bless_a_history_re_signed_under_a_forged_gateway(kms, Db::postgres(&url)).await;
}
