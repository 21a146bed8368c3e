//! The credential KMS hands a gateway is sealed to that gateway's own key (issue 28, point 8):
//! whoever captures the answer (a TLS-terminating proxy, a log of bodies) holds no usable token,
//! and a gateway that never registered a sealing key gets a clear refusal, not the token.

use http::{Method, StatusCode};
use serde_json::json;

use super::{gateway_audit_key, gateway_sealing_key, session_body, Kms, SA_TOKEN};
use crate::credential::sealing::{SealedToken, SealingError};
use crate::tls::generate_csr;

/// Opens a session of `alice` on resource `prod` (at gateway `gw`) and returns its id.
async fn session(kms: &Kms) -> String {
    kms.resource("prod", "gw").await;
    let alice = kms.user("alice", false).await;
    kms.grant("prod", "alice", 3600).await;
    let created = kms
        .post("/v1/sessions", &alice, session_body("prod", 300))
        .await;
    created.expect(StatusCode::CREATED)["session"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_captured_credential_answer_holds_no_token_and_opens_only_with_its_gateways_key() {
    let kms = Kms::start().await;
    let gateway = kms.gateway("gw").await;
    kms.gateway("gw2").await;
    let id = session(&kms).await;
    let path = format!("/v1/gateway/sessions/{id}/credential");
    let answer = kms
        .raw(Method::GET, &path, Some(&gateway), None, Vec::new())
        .await;
    let body = answer.json.to_string();
    assert_eq!(answer.status, StatusCode::OK, "{body}");
    assert!(!body.contains(SA_TOKEN), "the token in clear: {body}");
    assert!(
        !body.contains("c2VydmljZS1hY2NvdW50"),
        "part of the token: {body}"
    );
    assert!(answer.json.get("token").is_none(), "{body}");
    let sealed: SealedToken = serde_json::from_value(answer.json["sealed_token"].clone()).unwrap();
    // Only gw's key opens it, and only for this session at gw.
    let opened = gateway_sealing_key("gw").open(&sealed, &id, "gw").unwrap();
    assert_eq!(opened.expose(), SA_TOKEN);
    for (key, session, at) in [
        (gateway_sealing_key("gw2"), id.as_str(), "gw"),
        (gateway_sealing_key("gw2"), id.as_str(), "gw2"),
        (gateway_sealing_key("gw"), "another-session", "gw"),
        (gateway_sealing_key("gw"), id.as_str(), "gw2"),
    ] {
        let err = key.open(&sealed, session, at).unwrap_err();
        assert!(matches!(err, SealingError::Open), "{err:?}");
    }
    // Each answer is sealed afresh: a captured one says nothing about the next.
    let again = kms.get(&path, &gateway).await.expect(StatusCode::OK);
    assert_ne!(again["sealed_token"], answer.json["sealed_token"]);
    kms.stop().await;
}

#[tokio::test]
async fn a_gateway_without_a_sealing_key_gets_a_clear_refusal_until_it_registers_one() {
    let kms = Kms::start().await;
    // Enrolled as a gateway older than sealing enrolls: no sealing key.
    let enrollment = kms.pending_gateway("gw").await;
    let (_key, csr) = generate_csr("gw").unwrap();
    let body = json!({"name": "gw", "enrollment_token": enrollment, "csr": csr,
                      "address": "127.0.0.1:8443",
                      "audit_key": gateway_audit_key("gw").public_key()});
    let enrolled = kms
        .call(Method::POST, "/v1/gateways/enroll", None, body)
        .await
        .expect(StatusCode::OK);
    let gateway = enrolled["gateway_token"].as_str().unwrap().to_owned();
    let id = session(&kms).await;
    let path = format!("/v1/gateway/sessions/{id}/credential");
    let refused = kms.get(&path, &gateway).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.json);
    assert_eq!(refused.code(), "conflict");
    for part in ["gw", "sealing key", "upgrade kms-pam-gateway", "restart"] {
        assert!(
            refused.message().contains(part),
            "{part}: {}",
            refused.message()
        );
    }
    assert!(!refused.json.to_string().contains(SA_TOKEN));

    // Its next start registers the key, once: the same key again is fine, another refused.
    let key = json!({"public_key": gateway_sealing_key("gw").public_key()});
    for _ in 0..2 {
        kms.post("/v1/gateway/sealing-key", &gateway, key.clone())
            .await
            .expect(StatusCode::OK);
    }
    let other = json!({"public_key": gateway_sealing_key("intruder").public_key()});
    let conflict = kms.post("/v1/gateway/sealing-key", &gateway, other).await;
    assert_eq!(conflict.status, StatusCode::CONFLICT, "{}", conflict.json);
    assert!(
        conflict.message().contains("enroll it again"),
        "{}",
        conflict.message()
    );
    let bad = kms
        .post(
            "/v1/gateway/sealing-key",
            &gateway,
            json!({"public_key": "AAAA"}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.json);
    assert!(
        bad.message().contains("base64 of 32 bytes"),
        "{}",
        bad.message()
    );

    let answer = kms.get(&path, &gateway).await.expect(StatusCode::OK);
    let sealed: SealedToken = serde_json::from_value(answer["sealed_token"].clone()).unwrap();
    let opened = gateway_sealing_key("gw").open(&sealed, &id, "gw").unwrap();
    assert_eq!(opened.expose(), SA_TOKEN);
    kms.stop().await;
}
