//! Issue 28 point 6: project admins may use only the gateways an organisation admin assigned
//! to their project, and only for API server URLs the gateway's allow-list lets through.

use http::{Method, StatusCode};
use serde_json::{json, Value};

use super::Kms;

const A: &str = "/v1/projects/team-a";

fn resource(name: &str, url: &str) -> Value {
    json!({"kind": "kubernetes", "name": name, "gateway": "gw", "url": url, "ssl_verify": false})
}

/// `team-a` with project admin `pat` and member `alice`; gateway `gw` enrolled (serving only
/// `default`, as every gateway created without projects). Returns (gateway, pat, alice).
async fn team_a(kms: &Kms) -> (String, String, String) {
    let gateway = kms.gateway("gw").await;
    kms.project("team-a").await;
    let pat = kms.user("pat", false).await;
    kms.member("team-a", "pat", "admin").await;
    let alice = kms.user("alice", false).await;
    kms.member("team-a", "alice", "member").await;
    (gateway, pat, alice)
}

async fn assign(kms: &Kms, token: &str) -> super::Reply {
    let body = json!({"project": "team-a"});
    kms.call(Method::POST, "/v1/gateways/gw/projects", Some(token), body)
        .await
}

fn projects(gateway: &Value) -> Vec<&str> {
    gateway["projects"]
        .as_array()
        .expect("projects")
        .iter()
        .filter_map(Value::as_str)
        .collect()
}

#[tokio::test]
async fn a_project_admin_cannot_put_a_resource_on_a_gateway_not_assigned_to_the_project() {
    let kms = Kms::start().await;
    let (_gateway, pat, alice) = team_a(&kms).await;
    // Fails before this change: the resource was created (201), any gateway, any host.
    let refused = kms
        .post(
            &format!("{A}/resources"),
            &pat,
            resource("scan", "https://10.9.9.9:22"),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.json);
    assert_eq!(
        refused.message(),
        "gateway gw is not assigned to project team-a; an organisation administrator can assign \
         it with `kms-pam gateway assign gw team-a`"
    );
    // The project admin cannot assign it themselves.
    assert_eq!(assign(&kms, &pat).await.status, StatusCode::FORBIDDEN);
    let unassign = "/v1/gateways/gw/projects/default";
    assert_eq!(
        kms.delete(unassign, &pat).await.status,
        StatusCode::FORBIDDEN
    );
    let update = json!({"allowed_url_hosts": []});
    let patched = kms
        .call(Method::PATCH, "/v1/gateways/gw", Some(&pat), update)
        .await;
    assert_eq!(patched.status, StatusCode::FORBIDDEN);

    // The organisation admin assigns it; the answer and the listings show it.
    let assigned = assign(&kms, &kms.admin).await.expect(StatusCode::OK);
    assert_eq!(projects(&assigned), ["default", "team-a"]);
    let shown = kms
        .get("/v1/gateways/gw", &pat)
        .await
        .expect(StatusCode::OK);
    assert_eq!(projects(&shown), ["default", "team-a"]);
    let olga = kms.user("olga", false).await;
    let listed = kms.get("/v1/gateways", &olga).await.expect(StatusCode::OK);
    assert_eq!(
        projects(&listed[0]),
        ["default"],
        "only the caller's own projects"
    );
    let unknown = kms
        .call(
            Method::POST,
            "/v1/gateways/gw/projects",
            Some(&kms.admin),
            json!({"project": "team-z"}),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.message(), "project team-z not found");

    kms.post(
        &format!("{A}/resources"),
        &pat,
        resource("prod", "https://10.0.0.1:6443"),
    )
    .await
    .expect(StatusCode::CREATED);
    let account = json!({"name": "admin", "token": super::SA_TOKEN, "max_duration_secs": 3600});
    kms.post(&format!("{A}/resources/prod/accounts"), &pat, account)
        .await
        .expect(StatusCode::CREATED);
    kms.grant_at(A, "prod", "alice", 600).await;
    let open = kms.session_id(A, &alice, "prod").await;

    // Unassigned: no new session, no new resource; the open one runs on.
    let after = kms
        .delete("/v1/gateways/gw/projects/team-a", &kms.admin)
        .await;
    assert_eq!(projects(&after.expect(StatusCode::OK)), ["default"]);
    let refused = kms.open_session_at(A, &alice, "prod", 60).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.json);
    assert!(refused
        .message()
        .contains("kms-pam gateway assign gw team-a"));
    let refused = kms
        .post(
            &format!("{A}/resources"),
            &pat,
            resource("again", "https://10.0.0.1:6443"),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let session = kms
        .get(&format!("{A}/sessions/{open}"), &alice)
        .await
        .expect(StatusCode::OK);
    assert_eq!(session["status"], "active");
}

#[tokio::test]
async fn gateway_create_assigns_the_projects_named_and_default_otherwise() {
    let kms = Kms::start().await;
    kms.project("team-a").await;
    kms.project("team-b").await;
    let created = kms
        .post(
            "/v1/gateways",
            &kms.admin,
            json!({"name": "gw-ab", "projects": ["team-a", "team-b"]}),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(projects(&created["gateway"]), ["team-a", "team-b"]);
    let plain = kms
        .post("/v1/gateways", &kms.admin, json!({"name": "gw-d"}))
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(projects(&plain["gateway"]), ["default"]);
    assert_eq!(plain["gateway"]["allowed_url_hosts"], json!([]));
    let unknown = kms
        .post(
            "/v1/gateways",
            &kms.admin,
            json!({"name": "gw-z", "projects": ["team-z"]}),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let absent = kms.get("/v1/gateways/gw-z", &kms.admin).await;
    assert_eq!(absent.status, StatusCode::NOT_FOUND, "nothing half made");
}

#[tokio::test]
async fn urls_outside_the_allow_list_are_refused_at_creation_and_at_credential_release() {
    let kms = Kms::start().await;
    let (gateway, pat, alice) = team_a(&kms).await;
    let patch = |hosts: Value| {
        kms.call(
            Method::PATCH,
            "/v1/gateways/gw",
            Some(&kms.admin),
            json!({ "allowed_url_hosts": hosts }),
        )
    };
    let listed = patch(json!(["*.Corp.Internal", "10.0.0.0/8:6443"]))
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        listed["allowed_url_hosts"],
        json!(["*.corp.internal", "10.0.0.0/8:6443"])
    );
    let bad = patch(json!(["10.0.0.0/33"])).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.message().contains("write a host name"), "{}", bad.json);
    let nothing = kms
        .call(
            Method::PATCH,
            "/v1/gateways/gw",
            Some(&kms.admin),
            json!({}),
        )
        .await;
    assert_eq!(nothing.status, StatusCode::BAD_REQUEST);
    kms.call(
        Method::POST,
        "/v1/gateways/gw/projects",
        Some(&kms.admin),
        json!({"project": "team-a"}),
    )
    .await
    .expect(StatusCode::OK);

    // Fails before this change: each of these was created (201).
    for url in [
        "https://192.168.1.1:6443",
        "https://10.0.0.1:22",
        "https://3232235777:6443",
        "https://[::ffff:192.168.1.1]:6443",
        "https://api.corp.internal.evil.example",
        "https://corp.internal",
    ] {
        let refused = kms
            .post(&format!("{A}/resources"), &pat, resource("x", url))
            .await;
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{url}: {}",
            refused.json
        );
        assert!(
            refused
                .message()
                .contains("outside the allow-list of gateway gw")
                && refused.message().contains("kms-pam gateway update gw"),
            "{url}: {}",
            refused.json
        );
    }
    for (name, url) in [
        ("named", "https://API.corp.internal.:6443"),
        ("prod", "https://167772161:6443"),
    ] {
        kms.post(&format!("{A}/resources"), &pat, resource(name, url))
            .await
            .expect(StatusCode::CREATED);
    }
    let account = json!({"name": "admin", "token": super::SA_TOKEN, "max_duration_secs": 3600});
    kms.post(&format!("{A}/resources/prod/accounts"), &pat, account)
        .await
        .expect(StatusCode::CREATED);
    kms.grant_at(A, "prod", "alice", 600).await;
    let id = kms.session_id(A, &alice, "prod").await;
    let credential = format!("/v1/gateway/sessions/{id}/credential");
    kms.get(&credential, &gateway).await.expect(StatusCode::OK);

    // The list narrows: the credential is no longer released, no new session opens.
    patch(json!(["*.corp.internal"]))
        .await
        .expect(StatusCode::OK);
    // Fails before this change: the credential was released (200).
    let refused = kms.get(&credential, &gateway).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.json);
    assert!(
        refused
            .message()
            .contains("outside the allow-list of gateway gw"),
        "{}",
        refused.json
    );
    let session = kms.open_session_at(A, &alice, "prod", 60).await;
    assert_eq!(session.status, StatusCode::FORBIDDEN, "{}", session.json);
    // An empty list lifts the limit again.
    let cleared = patch(json!([])).await.expect(StatusCode::OK);
    assert_eq!(cleared["allowed_url_hosts"], json!([]));
    kms.get(&credential, &gateway).await.expect(StatusCode::OK);
}
