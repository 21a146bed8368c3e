//! Issue 24 point 7: project administrators edit a resource (`PATCH …/resources/{name}`), each
//! field checked as at its creation, keeping its accounts, grants and open sessions.

use http::{Method, StatusCode};
use serde_json::{json, Value};

use super::{Kms, Reply};

const A: &str = "/v1/projects/team-a";

/// `PATCH path` as `token`.
async fn patch(kms: &Kms, path: &str, token: &str, body: Value) -> Reply {
    kms.call(Method::PATCH, path, Some(token), body).await
}

/// Gateways `gw` and `gw-2` serving `default`; resource `prod` on `gw` (account `admin`),
/// granted to member `alice`. Returns alice's token.
async fn setup(kms: &Kms) -> String {
    kms.gateway("gw").await;
    kms.gateway("gw-2").await;
    kms.resource("prod", "gw").await;
    let alice = kms.user("alice", false).await;
    kms.member("default", "alice", "member").await;
    kms.grant("prod", "alice", 3600).await;
    alice
}

#[tokio::test]
async fn admins_edit_each_field_and_the_resource_keeps_its_accounts_grants_and_sessions() {
    let kms = Kms::start().await;
    let alice = setup(&kms).await;
    let open = kms.session_id("/v1", &alice, "prod").await;
    let path = "/v1/resources/prod";

    let edited = patch(
        &kms,
        path,
        &kms.admin,
        json!({"url": "https://k8s.corp.internal"}),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(edited["url"], "https://k8s.corp.internal");
    assert_eq!(
        (&edited["gateway"], &edited["ssl_verify"]),
        (&json!("gw"), &json!(true))
    );
    let pem = kms.ca_pem.clone();
    let edited = patch(&kms, path, &kms.admin, json!({ "ca_cert": pem })).await;
    assert_eq!(edited.expect(StatusCode::OK)["ca_cert"], pem.as_str());
    let edited = patch(&kms, path, &kms.admin, json!({"ca_cert": ""})).await;
    assert_eq!(
        edited.expect(StatusCode::OK)["ca_cert"],
        Value::Null,
        "removed"
    );
    let edited = patch(&kms, path, &kms.admin, json!({"ssl_verify": false})).await;
    assert_eq!(edited.expect(StatusCode::OK)["ssl_verify"], false);
    let recording = json!({"unrecorded_streams": "allow", "max_bytes": 4096});
    let edited = patch(&kms, path, &kms.admin, json!({ "recording": recording }))
        .await
        .expect(StatusCode::OK);
    assert_eq!(edited["recording"]["unrecorded_streams"], "allow");
    assert_eq!(edited["recording"]["max_bytes"], 4096);
    let edited = patch(&kms, path, &kms.admin, json!({"gateway": "gw-2"}))
        .await
        .expect(StatusCode::OK);
    assert_eq!(edited["gateway"], "gw-2");
    // An empty edit changes nothing; every field given so far is kept.
    let same = patch(&kms, path, &kms.admin, json!({})).await;
    assert_eq!(same.expect(StatusCode::OK), edited);
    let shown = kms.get(path, &alice).await.expect(StatusCode::OK);
    assert_eq!(shown, edited);
    assert_eq!(
        (
            shown["name"].as_str(),
            shown["url"].as_str(),
            shown["ssl_verify"].as_bool()
        ),
        (Some("prod"), Some("https://k8s.corp.internal"), Some(false))
    );

    // Accounts and grants stay; the open session keeps its gateway; new ones take the new one.
    let accounts = kms.get("/v1/accounts?resource=prod", &kms.admin).await;
    assert_eq!(accounts.expect(StatusCode::OK)[0]["name"], "admin");
    let grants = kms
        .get("/v1/grants", &kms.admin)
        .await
        .expect(StatusCode::OK);
    assert_eq!(grants[0]["user"], "alice");
    let before = kms.get(&format!("/v1/sessions/{open}"), &alice).await;
    let before = before.expect(StatusCode::OK);
    assert_eq!(
        (&before["status"], &before["gateway"]),
        (&json!("active"), &json!("gw"))
    );
    let created = kms.open_session(&alice, "prod", 300).await;
    assert_eq!(
        created.expect(StatusCode::CREATED)["session"]["gateway"],
        "gw-2"
    );
    kms.assert_never_leaked(super::SA_TOKEN);
}

#[tokio::test]
async fn edits_are_checked_as_at_creation_and_a_refused_one_changes_nothing() {
    let kms = Kms::start().await;
    setup(&kms).await;
    let path = "/v1/resources/prod";
    let original = kms.get(path, &kms.admin).await.expect(StatusCode::OK);
    let refused = [
        (json!({"url": "http://10.0.0.1:6443"}), 400, "https://"),
        (json!({"url": "not a url"}), 400, "invalid API server URL"),
        (json!({"ca_cert": "not a PEM"}), 400, "PEM bundle"),
        (
            json!({"gateway": "nope"}),
            404,
            "gateway \"nope\" not found",
        ),
        (json!({"ssl_verify": "yes"}), 422, ""),
        (
            json!({"recording": {"unrecorded_streams": "deny", "max_bytes": 4096,
                                 "max_input_bytes": 1024}}),
            400,
            "input recording cap",
        ),
        // A valid field beside a refused one is not applied either.
        (
            json!({"ssl_verify": false, "url": "http://x:6443"}),
            400,
            "https://",
        ),
    ];
    for (body, status, says) in refused {
        let reply = patch(&kms, path, &kms.admin, body.clone()).await;
        assert_eq!(reply.status.as_u16(), status, "{body}: {}", reply.json);
        assert!(
            reply.message().contains(says),
            "{body}: {}",
            reply.message()
        );
    }
    let missing = patch(
        &kms,
        "/v1/resources/none",
        &kms.admin,
        json!({"ssl_verify": false}),
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    // The gateway's scope: assigned to the project, and its allow-list lets the URL through.
    kms.project("team-a").await;
    kms.resource_at(A, "stage", "gw").await;
    let other = patch(
        &kms,
        &format!("{A}/resources/stage"),
        &kms.admin,
        json!({"gateway": "gw-2"}),
    )
    .await;
    assert_eq!(other.status, StatusCode::FORBIDDEN, "{}", other.json);
    assert!(other.message().contains("not assigned to project team-a"));
    let hosts = json!({"allowed_url_hosts": ["*.corp.internal"]});
    patch(&kms, "/v1/gateways/gw-2", &kms.admin, hosts)
        .await
        .expect(StatusCode::OK);
    let outside = patch(&kms, path, &kms.admin, json!({"gateway": "gw-2"})).await;
    assert_eq!(outside.status, StatusCode::BAD_REQUEST, "{}", outside.json);
    assert!(
        outside.message().contains("10.0.0.1"),
        "{}",
        outside.message()
    );
    let inside = json!({"gateway": "gw-2", "url": "https://k8s.corp.internal:6443"});
    patch(&kms, path, &kms.admin, inside)
        .await
        .expect(StatusCode::OK);
    let outside = patch(
        &kms,
        path,
        &kms.admin,
        json!({"url": "https://10.0.0.2:6443"}),
    )
    .await;
    assert_eq!(outside.status, StatusCode::BAD_REQUEST, "{}", outside.json);
    let shown = kms.get(path, &kms.admin).await.expect(StatusCode::OK);
    assert_eq!(shown["url"], "https://k8s.corp.internal:6443");
    assert_eq!(
        (&shown["ssl_verify"], &original["ssl_verify"]),
        (&json!(true), &json!(true))
    );
}

#[tokio::test]
async fn only_project_admins_edit_resources() {
    let kms = Kms::start().await;
    let alice = setup(&kms).await;
    kms.project("team-a").await;
    kms.resource_at(A, "stage", "gw").await;
    let pat = kms.user("pat", false).await;
    kms.member("team-a", "pat", "admin").await;
    let bob = kms.user("bob", false).await;
    kms.member("team-a", "bob", "member").await;
    let eve = kms.user("eve", false).await;
    kms.member("team-a", "eve", "auditor").await;
    let stage = format!("{A}/resources/stage");
    let body = json!({"ssl_verify": false});
    for (token, who) in [(&bob, "member"), (&eve, "auditor")] {
        let refused = patch(&kms, &stage, token, body.clone()).await;
        assert_eq!(
            (refused.status, refused.code()),
            (StatusCode::FORBIDDEN, "forbidden"),
            "{who}: {}",
            refused.json
        );
    }
    // alice is only a member of `default`; team-a does not exist for her.
    let outsider = patch(&kms, &stage, &alice, body.clone()).await;
    assert_eq!(outsider.status, StatusCode::NOT_FOUND);
    let member = patch(&kms, "/v1/resources/prod", &alice, body.clone()).await;
    assert_eq!(member.status, StatusCode::FORBIDDEN);
    let unchanged = kms.get(&stage, &pat).await.expect(StatusCode::OK);
    assert_eq!(unchanged["ssl_verify"], true);
    let edited = patch(&kms, &stage, &pat, body).await.expect(StatusCode::OK);
    assert_eq!(edited["ssl_verify"], false);
}
