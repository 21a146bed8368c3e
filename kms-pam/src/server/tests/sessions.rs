//! Session creation, duration limits, the certificate, and life after creation: end,
//! termination, expiry, and the change long-poll that tells gateways about them.

use std::time::{Duration, Instant};

use http::StatusCode;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use serde_json::{json, Value};

use super::{Kms, SA_TOKEN};
use crate::time::parse_rfc3339;
use crate::tls::SessionIdentity;

/// A KMS with gateway `gw`, resource `prod` and member `alice` granted `prod/admin` for 10 min.
async fn world() -> (Kms, String, String) {
    let kms = Kms::start().await;
    let gateway = kms.gateway("gw").await;
    kms.resource("prod", "gw").await;
    let alice = kms.user("alice", false).await;
    kms.grant("prod", "alice", 600).await;
    (kms, alice, gateway)
}

fn seq(changes: &Value) -> u64 {
    changes["seq"].as_u64().unwrap()
}

#[tokio::test]
async fn a_session_certificate_names_the_session_gateway_and_user() {
    let (kms, alice, _) = world().await;
    let created = kms
        .open_session(&alice, "prod", 300)
        .await
        .expect(StatusCode::CREATED);
    let session = &created["session"];
    assert_eq!(session["status"], "active");
    assert_eq!(
        (session["user"].as_str(), session["gateway"].as_str()),
        (Some("alice"), Some("gw"))
    );
    assert_eq!(session["reason"], "testing");
    assert_eq!(created["gateway_address"], "127.0.0.1:8443");
    assert_eq!(created["ca_certificate"], kms.ca_pem.as_str());
    let pem = created["certificate"].as_str().unwrap();
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
    let identity = SessionIdentity::from_cert_der(&der).unwrap();
    assert_eq!(identity.session_id, session["id"].as_str().unwrap());
    assert_eq!(
        (identity.gateway.as_str(), identity.user.as_str()),
        ("gw", "alice")
    );
    let time = |field: &str| parse_rfc3339(session[field].as_str().unwrap()).unwrap();
    assert_eq!(identity.not_before, time("created_at"));
    assert_eq!(identity.not_after, time("expires_at"));
    assert_eq!(
        identity
            .not_after
            .duration_since(identity.not_before)
            .unwrap()
            .as_secs(),
        300
    );
    kms.assert_never_leaked(SA_TOKEN);
}

#[tokio::test]
async fn durations_above_the_maximum_are_refused_naming_it() {
    let (kms, alice, _) = world().await;
    let member = kms.open_session(&alice, "prod", 601).await;
    assert_eq!(
        (member.status, member.code()),
        (StatusCode::BAD_REQUEST, "invalid")
    );
    assert!(member.message().contains("10m"), "{}", member.message());
    let admin = kms.open_session(&kms.admin, "prod", 3601).await;
    assert_eq!(admin.status, StatusCode::BAD_REQUEST);
    assert!(admin.message().contains("1h"), "{}", admin.message());
    let zero = kms.open_session(&alice, "prod", 0).await;
    assert_eq!(zero.status, StatusCode::BAD_REQUEST);
    kms.open_session(&alice, "prod", 600)
        .await
        .expect(StatusCode::CREATED);
    kms.open_session(&kms.admin, "prod", 3600)
        .await
        .expect(StatusCode::CREATED);
}

#[tokio::test]
async fn members_without_a_grant_are_refused_alike_for_missing_accounts() {
    let (kms, _, _) = world().await;
    let bob = kms.user("bob", false).await;
    let refused = kms.open_session(&bob, "prod", 60).await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    let missing = kms.open_session(&bob, "nowhere", 60).await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN);
    let for_admin = kms.open_session(&kms.admin, "nowhere", 60).await;
    assert_eq!(for_admin.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_csrs_and_unenrolled_gateways_are_refused() {
    let (kms, alice, _) = world().await;
    let body = json!({"resource": "prod", "account": "admin", "duration_secs": 60,
                      "csr": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"});
    let bad = kms.post("/v1/sessions", &alice, body).await;
    assert_eq!(
        (bad.status, bad.code()),
        (StatusCode::BAD_REQUEST, "invalid")
    );
    kms.pending_gateway("later").await;
    kms.resource("staging", "later").await;
    let pending = kms.open_session(&kms.admin, "staging", 60).await;
    assert_eq!(pending.status, StatusCode::CONFLICT);
    assert!(
        pending.message().contains("enroll"),
        "{}",
        pending.message()
    );
}

#[tokio::test]
async fn expiry_is_marked_and_wakes_the_long_poll() {
    let (kms, alice, gateway) = world().await;
    let start = kms
        .get("/v1/gateway/changes?after=0", &gateway)
        .await
        .expect(StatusCode::OK);
    let created = kms
        .open_session(&alice, "prod", 1)
        .await
        .expect(StatusCode::CREATED);
    let id = created["session"]["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/gateway/changes?after={}&wait_secs=10", seq(&start));
    let opened = kms.get(&path, &gateway).await.expect(StatusCode::OK);
    assert_eq!(
        opened["changes"],
        json!([{"session_id": id, "status": "active"}])
    );
    let waited = Instant::now();
    let path = format!("/v1/gateway/changes?after={}&wait_secs=10", seq(&opened));
    let expired = kms.get(&path, &gateway).await.expect(StatusCode::OK);
    // Woken by the expiry, not by the 10 s wait running out (generous: the machine may be busy).
    assert!(
        waited.elapsed() < Duration::from_secs(8),
        "{:?}",
        waited.elapsed()
    );
    assert_eq!(
        expired["changes"],
        json!([{"session_id": id, "status": "expired"}])
    );
    assert!(seq(&expired) > seq(&opened));
    let shown = kms
        .get(&format!("/v1/sessions/{id}"), &alice)
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        (shown["status"].as_str(), shown["end_cause"].as_str()),
        (Some("expired"), Some("expiry"))
    );
    let credential = kms
        .get(&format!("/v1/gateway/sessions/{id}/credential"), &gateway)
        .await;
    assert_eq!(credential.status, StatusCode::FORBIDDEN);
    assert!(
        credential.message().contains("expired"),
        "{}",
        credential.message()
    );
}

#[tokio::test]
async fn ending_and_terminating_wake_the_long_poll_within_a_second() {
    let (kms, alice, gateway) = world().await;
    let a = kms
        .open_session(&alice, "prod", 300)
        .await
        .expect(StatusCode::CREATED);
    let b = kms
        .open_session(&alice, "prod", 300)
        .await
        .expect(StatusCode::CREATED);
    let now = kms
        .get("/v1/gateway/changes?after=0", &gateway)
        .await
        .expect(StatusCode::OK);
    let mut after = seq(&now);
    for (session, by, path, status) in [
        (&a, &alice, "end", "ended"),
        (&b, &kms.admin, "terminate", "terminated"),
    ] {
        let id = session["session"]["id"].as_str().unwrap();
        let poll_path = format!("/v1/gateway/changes?after={after}&wait_secs=10");
        let poll = kms.get(&poll_path, &gateway);
        let end = async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let ended = kms
                .post(&format!("/v1/sessions/{id}/{path}"), by, Value::Null)
                .await;
            (Instant::now(), ended.expect(StatusCode::OK))
        };
        let ((ended_at, ended), (polled, polled_at)) = tokio::join!(end, async {
            let r = poll.await;
            (r, Instant::now())
        });
        assert_eq!(ended["status"], status);
        let polled = polled.expect(StatusCode::OK);
        assert_eq!(
            polled["changes"],
            json!([{"session_id": id, "status": status}])
        );
        assert!(polled_at.duration_since(ended_at) < Duration::from_secs(1));
        let credential = kms
            .get(&format!("/v1/gateway/sessions/{id}/credential"), &gateway)
            .await;
        assert_eq!(credential.status, StatusCode::FORBIDDEN);
        let now_seq = seq(&polled);
        let again = kms
            .post(&format!("/v1/sessions/{id}/end"), &kms.admin, Value::Null)
            .await;
        assert_eq!(
            again.expect(StatusCode::OK)["status"],
            status,
            "ending twice changes nothing"
        );
        let quiet = kms
            .get(&format!("/v1/gateway/changes?after={now_seq}"), &gateway)
            .await;
        let quiet = quiet.expect(StatusCode::OK);
        assert_eq!(quiet["changes"], json!([]));
        after = seq(&quiet);
    }
}

#[tokio::test]
async fn a_gateway_ahead_of_the_log_is_told_to_relist_at_once() {
    let (kms, alice, gateway) = world().await;
    kms.open_session(&alice, "prod", 60)
        .await
        .expect(StatusCode::CREATED);
    let waited = Instant::now();
    let ahead = kms
        .get("/v1/gateway/changes?after=1000&wait_secs=30", &gateway)
        .await;
    let ahead = ahead.expect(StatusCode::OK);
    assert!(seq(&ahead) < 1000);
    assert_eq!(ahead["changes"], json!([]));
    // Answered at once rather than after the 30 s wait (generous: the machine may be busy).
    assert!(waited.elapsed() < Duration::from_secs(10));
    let idle = Instant::now();
    let path = format!("/v1/gateway/changes?after={}&wait_secs=1", seq(&ahead));
    let nothing = kms.get(&path, &gateway).await.expect(StatusCode::OK);
    assert_eq!(nothing["changes"], json!([]));
    assert!(
        idle.elapsed() >= Duration::from_millis(900),
        "waited {:?}",
        idle.elapsed()
    );
}

#[tokio::test]
async fn deleting_an_account_terminates_its_active_sessions() {
    let (kms, alice, gateway) = world().await;
    let created = kms
        .open_session(&alice, "prod", 300)
        .await
        .expect(StatusCode::CREATED);
    let id = created["session"]["id"].as_str().unwrap();
    let deleted = kms
        .call(
            http::Method::DELETE,
            "/v1/resources/prod/accounts/admin",
            Some(&kms.admin),
            Value::Null,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let shown = kms
        .get(&format!("/v1/sessions/{id}"), &alice)
        .await
        .expect(StatusCode::OK);
    assert_eq!(shown["status"], "terminated");
    let session = kms
        .get(&format!("/v1/gateway/sessions/{id}"), &gateway)
        .await;
    assert_eq!(session.expect(StatusCode::OK)["status"], "terminated");
    assert_eq!(
        kms.get("/v1/grants", &kms.admin)
            .await
            .expect(StatusCode::OK),
        json!([])
    );
}
