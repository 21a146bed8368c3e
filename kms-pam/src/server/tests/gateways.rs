//! Gateway creation, enrollment (single use, expiring), heartbeats and status.

use http::{Method, StatusCode};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use serde_json::{json, Value};
use sqlx::SqlitePool;

use super::Kms;
use crate::tls::{generate_csr, GatewayIdentity};

async fn database(kms: &Kms) -> SqlitePool {
    let url = format!("sqlite://{}", kms.data_dir().join("kms.db").display());
    SqlitePool::connect(&url).await.unwrap()
}

fn enroll_body(name: &str, token: &str, address: &str) -> Value {
    let (_key, csr) = generate_csr(name).unwrap();
    json!({"name": name, "enrollment_token": token, "csr": csr, "address": address})
}

#[tokio::test]
async fn enrollment_tokens_work_once() {
    let kms = Kms::start().await;
    let created = kms
        .post("/v1/gateways", &kms.admin, json!({"name": "gw"}))
        .await;
    let created = created.expect(StatusCode::CREATED);
    assert_eq!(created["gateway"]["status"], "pending");
    let token = created["enrollment_token"].as_str().unwrap();
    assert!(token.starts_with("kmse_"));
    let enroll = |body: Value| kms.call(Method::POST, "/v1/gateways/enroll", None, body);
    let wrong = enroll(enroll_body("gw", "kmse_wrong", "gw.example:8443")).await;
    assert_eq!(
        (wrong.status, wrong.code()),
        (StatusCode::UNAUTHORIZED, "unauthenticated")
    );
    let other_name = enroll(enroll_body("gw-2", token, "gw.example:8443")).await;
    assert_eq!(other_name.status, StatusCode::UNAUTHORIZED);
    let enrolled = enroll(enroll_body("gw", token, "gw.example:8443")).await;
    let enrolled = enrolled.expect(StatusCode::OK);
    assert_eq!(enrolled["ca_certificate"], kms.ca_pem.as_str());
    let pem = enrolled["certificate"].as_str().unwrap();
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
    assert_eq!(GatewayIdentity::from_cert_der(&der).unwrap().name, "gw");
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let san = cert.subject_alternative_name().unwrap().unwrap();
    assert!(format!("{:?}", san.value).contains("gw.example"));
    let gateway_token = enrolled["gateway_token"].as_str().unwrap();
    assert!(gateway_token.starts_with("kmsg_"));
    let me = kms
        .get("/v1/whoami", gateway_token)
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        (me["name"].as_str(), me["kind"].as_str()),
        (Some("gw"), Some("gateway"))
    );
    let replay = enroll(enroll_body("gw", token, "gw.example:8443")).await;
    assert_eq!(
        replay.status,
        StatusCode::UNAUTHORIZED,
        "the token is spent"
    );
    let listed = kms
        .get("/v1/gateways", &kms.admin)
        .await
        .expect(StatusCode::OK);
    assert_eq!(listed[0]["status"], "online");
    assert_eq!(listed[0]["address"], "gw.example:8443");
    let dup = kms
        .post("/v1/gateways", &kms.admin, json!({"name": "gw"}))
        .await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn expired_enrollment_tokens_and_bad_requests_are_refused() {
    let kms = Kms::start().await;
    let token = kms.pending_gateway("gw").await;
    let enroll = |body: Value| kms.call(Method::POST, "/v1/gateways/enroll", None, body);
    let bad_address = enroll(enroll_body("gw", &token, "no-port")).await;
    assert_eq!(bad_address.status, StatusCode::BAD_REQUEST);
    let mut bad_csr = enroll_body("gw", &token, "gw.example:8443");
    bad_csr["csr"] = json!("not a csr");
    assert_eq!(enroll(bad_csr).await.status, StatusCode::BAD_REQUEST);
    let db = database(&kms).await;
    sqlx::query("UPDATE enrollment_tokens SET expires_at = expires_at - 3601")
        .execute(&db)
        .await
        .unwrap();
    let late = enroll(enroll_body("gw", &token, "gw.example:8443")).await;
    assert_eq!(late.status, StatusCode::UNAUTHORIZED);
    assert!(late.message().contains("expired"), "{}", late.message());
}

#[tokio::test]
async fn heartbeats_move_the_address_and_keep_the_gateway_online() {
    let kms = Kms::start().await;
    let gateway = kms.gateway("gw").await;
    let beat = kms
        .post(
            "/v1/gateway/heartbeat",
            &gateway,
            json!({"address": "[::1]:9443"}),
        )
        .await;
    assert_eq!(beat.expect(StatusCode::OK), json!({"status": "ok"}));
    let listed = kms
        .get("/v1/gateways", &kms.admin)
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        (listed[0]["address"].as_str(), listed[0]["status"].as_str()),
        (Some("[::1]:9443"), Some("online"))
    );
    let db = database(&kms).await;
    sqlx::query("UPDATE gateways SET last_heartbeat = last_heartbeat - 31")
        .execute(&db)
        .await
        .unwrap();
    let listed = kms
        .get("/v1/gateways", &kms.admin)
        .await
        .expect(StatusCode::OK);
    assert_eq!(listed[0]["status"], "offline");
    let bad = kms
        .post("/v1/gateway/heartbeat", &gateway, json!({"address": "x"}))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

/// Whether KMS trusts gateway `gw`'s audit key: re-registering the same key succeeds only for
/// a key KMS endorsed.
async fn key_trusted(kms: &Kms, gateway: &str) -> bool {
    let key = super::gateway_audit_key("gw").public_key();
    let reply = kms
        .post(
            "/v1/gateway/audit-key",
            gateway,
            json!({ "public_key": key }),
        )
        .await;
    reply.status == StatusCode::OK
}

async fn clear_endorsements(kms: &Kms) {
    let db = database(kms).await;
    sqlx::query("UPDATE gateway_audit_keys SET endorsement = NULL")
        .execute(&db)
        .await
        .unwrap();
    db.close().await;
}

#[tokio::test]
async fn keys_stored_before_endorsements_are_endorsed_once_at_the_upgrade() {
    let kms = Kms::start().await;
    let gateway = kms.gateway("gw").await;
    assert!(key_trusted(&kms, &gateway).await, "endorsed at enrollment");
    let marker = kms.data_dir().join("audit-keys-endorsed");
    assert!(marker.exists(), "the first start is the upgrade");

    // A database from before endorsements (no endorsement, no marker): the first start of this
    // version endorses the keys it finds.
    clear_endorsements(&kms).await;
    assert!(
        !key_trusted(&kms, &gateway).await,
        "unendorsed: not trusted"
    );
    std::fs::remove_file(&marker).unwrap();
    let kms = Kms::start_in(kms.stop().await).await;
    assert!(key_trusted(&kms, &gateway).await, "endorsed at the upgrade");

    // Later starts endorse nothing: a key whose endorsement was removed in the database (or
    // a key swapped in) stays untrusted.
    clear_endorsements(&kms).await;
    let kms = Kms::start_in(kms.stop().await).await;
    assert!(!key_trusted(&kms, &gateway).await);
}

/// KMS opens no session on a gateway it knows is offline. Enrollment counts as a heartbeat, so
/// a gateway that enrolled but never sent one yet is online for 30 s, then offline.
#[tokio::test]
async fn sessions_are_refused_on_an_offline_gateway() {
    let kms = Kms::start().await;
    let gateway = kms.gateway("gw").await;
    kms.resource("prod", "gw").await;
    let fresh = kms.open_session(&kms.admin, "prod", 300).await;
    fresh.expect(StatusCode::CREATED);

    let db = database(&kms).await;
    sqlx::query("UPDATE gateways SET last_heartbeat = last_heartbeat - 95")
        .execute(&db)
        .await
        .unwrap();
    let listed = kms.get("/v1/gateways", &kms.admin).await;
    assert_eq!(listed.expect(StatusCode::OK)[0]["status"], "offline");
    let refused = kms.open_session(&kms.admin, "prod", 300).await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::CONFLICT, "conflict"),
        "{}",
        refused.json
    );
    let message = refused.message();
    assert!(
        message.starts_with("gateway gw of resource prod is offline since 20"),
        "{message}"
    );
    assert!(message.contains("(its last heartbeat, 1m3"), "{message}");
    assert!(message.contains("kms-pam-gateway is running"), "{message}");

    // A member with a grant is refused alike, and the gateway's next heartbeat lifts it.
    let alice = kms.user("alice", false).await;
    kms.member("default", "alice", "member").await;
    kms.grant("prod", "alice", 3600).await;
    let member = kms.open_session(&alice, "prod", 300).await;
    assert_eq!(member.status, StatusCode::CONFLICT, "{}", member.json);
    let beat = json!({"address": "127.0.0.1:8443"});
    kms.post("/v1/gateway/heartbeat", &gateway, beat)
        .await
        .expect(StatusCode::OK);
    kms.open_session(&alice, "prod", 300)
        .await
        .expect(StatusCode::CREATED);
    db.close().await;
}
