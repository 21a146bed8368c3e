//! Secrets at rest and in answers: the service-account token is sealed in the database, never
//! in an answer but the bound gateway's credential, and API tokens are stored only as hashes.

use http::StatusCode;
use serde_json::json;

use super::{gateway_sealing_key, Kms, SA_TOKEN};
use crate::credential::sealing::SealedToken;
use crate::server::store::sqlite::tests::files_contain;

#[tokio::test]
async fn the_service_account_token_is_sealed_and_reaches_only_the_bound_gateway() {
    let kms = Kms::start().await;
    let gateway = kms.gateway("gw").await;
    kms.resource("prod", "gw").await;
    let alice = kms.user("alice", false).await;
    kms.grant("prod", "alice", 600).await;
    let created = kms
        .open_session(&alice, "prod", 120)
        .await
        .expect(StatusCode::CREATED);
    let id = created["session"]["id"].as_str().unwrap();
    // Exercise every read an admin or member can make.
    for path in [
        "/v1/resources",
        "/v1/resources/prod",
        "/v1/accounts",
        "/v1/grants",
        "/v1/sessions",
        "/v1/users",
        "/v1/gateways",
    ] {
        kms.get(path, &kms.admin).await.expect(StatusCode::OK);
        kms.get(path, &alice).await;
    }
    kms.get(&format!("/v1/sessions/{id}"), &alice)
        .await
        .expect(StatusCode::OK);
    kms.get(&format!("/v1/gateway/sessions/{id}"), &gateway)
        .await
        .expect(StatusCode::OK);
    let credential = kms
        .get(&format!("/v1/gateway/sessions/{id}/credential"), &gateway)
        .await
        .expect(StatusCode::OK);
    let sealed: SealedToken = serde_json::from_value(credential["sealed_token"].clone()).unwrap();
    let opened = gateway_sealing_key("gw").open(&sealed, id, "gw").unwrap();
    assert_eq!(
        opened.expose(),
        SA_TOKEN,
        "the bound gateway gets the token back intact"
    );
    assert_eq!(credential["url"], "https://10.0.0.1:6443");
    assert_eq!(credential["ssl_verify"], true);
    kms.assert_never_leaked(SA_TOKEN);
    let data = kms.data_dir();
    let _dir = kms.stop().await;
    assert!(
        !files_contain(&data, SA_TOKEN),
        "the token is stored sealed"
    );
}

#[tokio::test]
async fn api_tokens_are_stored_only_as_hashes() {
    let kms = Kms::start().await;
    let bob = kms.user("bob", false).await;
    let enrollment = kms.pending_gateway("gw").await;
    let data = kms.data_dir();
    let admin = kms.admin.clone();
    let _dir = kms.stop().await;
    std::fs::remove_file(data.join("admin.token")).unwrap();
    for token in [&admin, &bob, &enrollment] {
        assert!(!files_contain(&data, token), "a token is stored in clear");
    }
}

#[tokio::test]
async fn account_tokens_are_trimmed_and_validated() {
    let kms = Kms::start().await;
    kms.gateway("gw").await;
    kms.resource("prod", "gw").await;
    let path = "/v1/resources/prod/accounts";
    let empty = kms
        .post(path, &kms.admin, json!({"name": "empty", "token": "  \n"}))
        .await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    let spaced = kms
        .post(path, &kms.admin, json!({"name": "sp", "token": "a b"}))
        .await;
    assert_eq!(spaced.status, StatusCode::BAD_REQUEST);
    assert!(!spaced.message().contains("a b"));
    let long = kms
        .post(
            path,
            &kms.admin,
            json!({"name": "long", "token": "t", "max_duration_secs": 31 * 86400}),
        )
        .await;
    assert_eq!(long.status, StatusCode::BAD_REQUEST);
    let account = kms
        .post(
            path,
            &kms.admin,
            json!({"name": "nl", "token": "tok\n", "description": "d"}),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(account["max_duration_secs"], 8 * 3600);
    assert_eq!(account["description"], "d");
    assert!(account.get("token").is_none());
}

/// Issue 28 (low): a credential in a resource URL (`https://user:password@host`) would be shown
/// to every member of the project. KMS refuses such a URL, with a message that says where the
/// credential belongs, and creates nothing. Before, it was stored and listed as given.
#[tokio::test]
async fn a_resource_url_carrying_a_credential_is_refused() {
    let kms = Kms::start().await;
    kms.gateway("gw").await;
    let alice = kms.user("alice", false).await;
    for url in [
        "https://admin:hunter2@10.0.0.1:6443",
        "https://kubeadmin@10.0.0.1:6443",
    ] {
        let body = json!({"kind": "kubernetes", "name": "prod", "gateway": "gw",
                          "url": url, "ssl_verify": true});
        let refused = kms.post("/v1/resources", &kms.admin, body).await;
        assert_eq!(refused.code(), "invalid", "{url}");
        assert!(
            refused.message().contains("user name or password"),
            "{}",
            refused.message()
        );
        assert!(
            !refused.message().contains("hunter2"),
            "the password is not echoed"
        );
    }
    let listed = kms
        .get("/v1/resources", &alice)
        .await
        .expect(StatusCode::OK);
    assert_eq!(listed, json!([]), "nothing was created");
}
