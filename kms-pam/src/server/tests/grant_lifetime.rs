//! Grants with a lifetime (issue 23): an expiry set at creation caps the sessions opened under
//! the grant and ends them when it passes; a revocation ends them at once and keeps the grant
//! listed as revoked, with who and why; an expired or revoked grant opens no session.

use std::time::{Duration, Instant, SystemTime};

use http::StatusCode;
use serde_json::{json, Value};

use super::Kms;
use crate::time::{format_rfc3339, parse_rfc3339};

/// A KMS with gateway `gw`, resource `prod` and member `alice`; returns the kms, alice's token
/// and the gateway's.
async fn world() -> (Kms, String, String) {
    let kms = Kms::start().await;
    let gateway = kms.gateway("gw").await;
    kms.resource("prod", "gw").await;
    let alice = kms.user("alice", false).await;
    (kms, alice, gateway)
}

async fn create(kms: &Kms, until: Option<SystemTime>) -> crate::server::tests::Reply {
    let mut body = json!({"resource": "prod", "account": "admin", "user": "alice"});
    if let Some(until) = until {
        body["expires_at"] = json!(format_rfc3339(until));
    }
    kms.post("/v1/grants", &kms.admin, body).await
}

/// The grant `id` as `GET /v1/grants` lists it.
async fn listed(kms: &Kms, id: &str) -> Value {
    let all = kms
        .get("/v1/grants", &kms.admin)
        .await
        .expect(StatusCode::OK);
    let found = all
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["id"] == id)
        .cloned();
    found.unwrap_or_else(|| panic!("grant {id} not listed: {all}"))
}

/// The session's status and cause as the admin sees them.
async fn ended(kms: &Kms, id: &str) -> (String, String) {
    let shown = kms.get(&format!("/v1/sessions/{id}"), &kms.admin).await;
    let shown = shown.expect(StatusCode::OK);
    let text = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    (text(&shown["status"]), text(&shown["end_cause"]))
}

/// The change log's current sequence number, as the gateway reads it.
async fn current_seq(kms: &Kms, gateway: &str) -> u64 {
    let now = kms.get("/v1/gateway/changes?after=0", gateway).await;
    now.expect(StatusCode::OK)["seq"].as_u64().unwrap()
}

/// Waits on the gateway's change long poll, from `after`, until session `id` ends; returns
/// when.
async fn change_of(kms: &Kms, gateway: &str, mut after: u64, id: &str) -> SystemTime {
    for _ in 0..3 {
        let path = format!("/v1/gateway/changes?after={after}&wait_secs=10");
        let changes = kms.get(&path, gateway).await.expect(StatusCode::OK);
        let list = changes["changes"].as_array().unwrap();
        if list
            .iter()
            .any(|c| c["session_id"] == id && c["status"] != "active")
        {
            return SystemTime::now();
        }
        after = changes["seq"].as_u64().unwrap();
    }
    panic!("session {id} did not end");
}

#[tokio::test]
async fn an_expiring_grant_caps_its_sessions_and_ends_them_when_it_expires() {
    let (kms, alice, gateway) = world().await;
    let until = SystemTime::now() + Duration::from_secs(3);
    let grant = create(&kms, Some(until)).await.expect(StatusCode::CREATED);
    let id = grant["id"].as_str().unwrap();
    assert_eq!(grant["status"], "active");
    let expires = parse_rfc3339(grant["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(listed(&kms, id).await["expires_at"], grant["expires_at"]);
    // The session asks for 5 minutes and gets the grant's remaining time.
    let opened = kms.open_session(&alice, "prod", 300).await;
    let session = opened.expect(StatusCode::CREATED)["session"].clone();
    assert_eq!(session["expires_at"], grant["expires_at"]);
    let session = session["id"].as_str().unwrap();
    let seq = current_seq(&kms, &gateway).await;
    let cut = change_of(&kms, &gateway, seq, session).await;
    let late = cut.duration_since(expires).unwrap_or_default();
    assert!(
        late < Duration::from_millis(1500),
        "cut {late:?} after the grant expired"
    );
    assert_eq!(
        ended(&kms, session).await,
        ("terminated".into(), "grant_expired".into())
    );
    assert_eq!(listed(&kms, id).await["status"], "expired");
    let refused = kms.open_session(&alice, "prod", 60).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.json);
    assert!(
        refused.message().contains("expired at"),
        "{}",
        refused.message()
    );
    // A new grant replaces the expired one.
    let renewed = create(&kms, None).await.expect(StatusCode::CREATED);
    assert_eq!(renewed["status"], "active");
    assert!(renewed["expires_at"].is_null());
    kms.open_session(&alice, "prod", 60)
        .await
        .expect(StatusCode::CREATED);
}

#[tokio::test]
async fn revoking_a_grant_ends_its_sessions_at_once_and_keeps_it_listed() {
    let (kms, alice, gateway) = world().await;
    let grant = create(&kms, None).await.expect(StatusCode::CREATED);
    let id = grant["id"].as_str().unwrap().to_owned();
    let session = kms.session_id("/v1", &alice, "prod").await;
    let path = format!("/v1/grants/{id}/revoke");
    let empty = kms.post(&path, &kms.admin, json!({"reason": "  "})).await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST, "{}", empty.json);
    let by_member = kms.post(&path, &alice, json!({"reason": "mine"})).await;
    assert_eq!(
        by_member.status,
        StatusCode::FORBIDDEN,
        "{}",
        by_member.json
    );
    let seq = current_seq(&kms, &gateway).await;
    let started = Instant::now();
    let watch = change_of(&kms, &gateway, seq, &session);
    let revoke = kms.post(&path, &kms.admin, json!({"reason": "moved teams"}));
    let (_, revoked) = tokio::join!(watch, revoke);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let revoked = revoked.expect(StatusCode::OK);
    assert_eq!(revoked["status"], "revoked");
    assert_eq!(revoked["revoke_reason"], "moved teams");
    assert!(revoked["revoked_by"].is_string() && revoked["revoked_at"].is_string());
    assert_eq!(
        ended(&kms, &session).await,
        ("terminated".into(), "grant_revoked".into())
    );
    assert_eq!(listed(&kms, &id).await, revoked);
    let again = kms
        .post(&path, &kms.admin, json!({"reason": "twice"}))
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.json);
    let refused = kms.open_session(&alice, "prod", 60).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.json);
    let message = refused.message();
    assert!(
        message.contains("was revoked") && message.contains("moved teams"),
        "{message}"
    );
    // `DELETE` still removes a grant, revoked or not.
    kms.delete(&format!("/v1/grants/{id}"), &kms.admin)
        .await
        .expect(StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn a_grant_cannot_expire_in_the_past() {
    let (kms, _, _) = world().await;
    let past = SystemTime::now() - Duration::from_secs(60);
    let refused = create(&kms, Some(past)).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.json);
    assert!(
        refused.message().contains("not in the future"),
        "{}",
        refused.message()
    );
    let listed = kms
        .get("/v1/grants", &kms.admin)
        .await
        .expect(StatusCode::OK);
    assert_eq!(listed, json!([]));
}
