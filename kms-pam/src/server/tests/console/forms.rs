//! The console's forms over HTTP: each change goes through the API handler (same rights, same
//! validation), refusals show next to their field, tokens are never rendered back, and forms
//! from elsewhere are refused.

use http::{Method, StatusCode};
use serde_json::Value;

use super::{page, sign_in, world, Page, SAME};

mod accounts;
mod resources;

/// `pairs` as an `application/x-www-form-urlencoded` body.
fn form(pairs: &[(&str, &str)]) -> String {
    let encode = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The error shown inside the label of `field`, if any.
fn field_error(page: &Page, field: &str) -> Option<String> {
    let start = page.text.find(&format!("data-field=\"{field}\""))?;
    let label = &page.text[start..];
    let label = &label[..label.find("</label>")?];
    let error = label.find("field-error")?;
    let text = &label[error..];
    let text = &text[text.find('>')? + 1..];
    Some(text[..text.find('<')?].to_owned())
}

async fn post(w: &super::World, path: &str, cookie: &str, body: &[(&str, &str)]) -> Page {
    page(
        &w.kms,
        Method::POST,
        path,
        Some(cookie),
        SAME,
        Some(&form(body)),
    )
    .await
}

#[tokio::test]
async fn add_resource_form_validates_next_to_fields_and_creates_through_the_api() {
    let w = world("r", "kubectl get pods").await;
    let admin = sign_in(&w.kms, &w.kms.admin.clone()).await;
    let alice = sign_in(&w.kms, &w.alice).await;
    let path = "/p/default/resources";

    let shown = page(&w.kms, Method::GET, path, Some(&admin), &[], None).await;
    assert!(shown.text.contains("Add resource") && shown.text.contains("<option value=\"gw\""));
    let member_view = page(&w.kms, Method::GET, path, Some(&alice), &[], None).await;
    assert!(
        !member_view.text.contains("Add resource"),
        "members see no form"
    );

    let bad = [
        ("name", "bad name!"),
        ("url", "ftp://x"),
        ("gateway", ""),
        ("ca_cert", "nope"),
    ];
    let refused = post(&w, path, &admin, &bad).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(field_error(&refused, "name")
        .unwrap()
        .contains("invalid resource name"));
    assert!(field_error(&refused, "url").is_some());
    assert!(field_error(&refused, "gateway").is_some());
    assert!(field_error(&refused, "ca_cert").is_some());
    assert!(
        refused.text.contains("value=\"bad name!\""),
        "what was typed stays"
    );

    let taken = [
        ("name", "prod"),
        ("url", "https://10.0.0.2:6443"),
        ("gateway", "gw"),
    ];
    let refused = post(&w, path, &admin, &taken).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(field_error(&refused, "name").is_some(), "{}", refused.text);

    // A gateway not assigned to the project is refused next to the gateway field.
    w.kms.project("team-y").await;
    let elsewhere = serde_json::json!({"name": "gw-y", "projects": ["team-y"]});
    w.kms
        .post("/v1/gateways", &w.kms.admin, elsewhere)
        .await
        .expect(StatusCode::CREATED);
    let unassigned = [
        ("name", "scan"),
        ("url", "https://10.0.0.2:22"),
        ("gateway", "gw-y"),
    ];
    let refused = post(&w, path, &admin, &unassigned).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        field_error(&refused, "gateway")
            .unwrap_or_default()
            .contains("not assigned to project default"),
        "{}",
        refused.text
    );

    let good = [
        ("name", "staging"),
        ("url", "https://10.0.0.2:6443"),
        ("gateway", "gw"),
    ];
    let answer = page(
        &w.kms,
        Method::POST,
        path,
        Some(&alice),
        SAME,
        Some(&form(&good)),
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "a member may not add");
    let answer = page(
        &w.kms,
        Method::POST,
        path,
        Some(&admin),
        &[("sec-fetch-site", "cross-site")],
        Some(&form(&good)),
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "cross-site");
    let answer = page(
        &w.kms,
        Method::POST,
        path,
        Some(&admin),
        &[],
        Some(&form(&good)),
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "no origin at all");
    w.kms
        .get("/v1/resources/staging", &w.kms.admin)
        .await
        .expect(StatusCode::NOT_FOUND);

    let created = post(&w, path, &admin, &good).await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.text);
    assert_eq!(created.headers["location"], "/p/default/resources/staging");
    let resource = w
        .kms
        .get("/v1/resources/staging", &w.kms.admin)
        .await
        .expect(StatusCode::OK);
    assert_eq!(resource["gateway"], "gw");
    // The checkbox was not sent: unticked.
    assert_eq!(resource["ssl_verify"], Value::Bool(false));
}

#[tokio::test]
async fn members_and_gateways_forms() {
    let w = world("r", "kubectl get pods").await;
    let admin = sign_in(&w.kms, &w.kms.admin.clone()).await;
    let alice = sign_in(&w.kms, &w.alice).await;
    w.kms.user("mallory", false).await;

    let members = "/p/default/members";
    let refused = post(
        &w,
        members,
        &admin,
        &[("user", "nobody"), ("role", "member")],
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(field_error(&refused, "user").is_some());
    let refused = post(
        &w,
        members,
        &admin,
        &[("user", "mallory"), ("role", "owner")],
    )
    .await;
    assert!(field_error(&refused, "role").is_some());
    let answer = post(
        &w,
        members,
        &alice,
        &[("user", "mallory"), ("role", "admin")],
    )
    .await;
    assert_eq!(
        answer.status,
        StatusCode::FORBIDDEN,
        "a member may not add members"
    );
    let added = post(
        &w,
        members,
        &admin,
        &[("user", "mallory"), ("role", "auditor")],
    )
    .await;
    assert_eq!(added.status, StatusCode::SEE_OTHER);
    let list = w
        .kms
        .get("/v1/projects/default/members", &w.kms.admin)
        .await
        .expect(StatusCode::OK);
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["user"] == "mallory" && m["role"] == "auditor"));
    let remove = "/p/default/members/mallory/remove";
    assert_eq!(
        post(&w, remove, &alice, &[]).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post(&w, remove, &admin, &[]).await.status,
        StatusCode::SEE_OTHER
    );
    let list = w
        .kms
        .get("/v1/projects/default/members", &w.kms.admin)
        .await
        .expect(StatusCode::OK);
    assert!(!list
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["user"] == "mallory"));

    let refused = post(&w, "/gateways", &admin, &[("name", "gw")]).await;
    assert!(field_error(&refused, "name")
        .unwrap()
        .contains("already exists"));
    assert_eq!(
        post(&w, "/gateways", &alice, &[("name", "gw2")])
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let created = post(&w, "/gateways", &admin, &[("name", "gw2")]).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text);
    assert!(
        created.text.contains("kms-pam-gateway --kms-url http://")
            && created.text.contains("--enroll-token kmse_")
    );
    let later = page(&w.kms, Method::GET, "/gateways", Some(&admin), &[], None).await;
    assert!(
        !later.text.contains("kmse_"),
        "the enrollment token is shown once"
    );
    assert!(later.text.contains("data-confirm"));
    // Issue 28 point 6: the page shows which projects may use each gateway, and its allow-list.
    w.kms.project("team-x").await;
    let assign = serde_json::json!({"project": "team-x"});
    w.kms
        .post("/v1/gateways/gw2/projects", &w.kms.admin, assign)
        .await
        .expect(StatusCode::OK);
    let limit = serde_json::json!({"allowed_url_hosts": ["*.corp.internal"]});
    w.kms
        .call(Method::PATCH, "/v1/gateways/gw2", Some(&w.kms.admin), limit)
        .await
        .expect(StatusCode::OK);
    let scoped = page(&w.kms, Method::GET, "/gateways", Some(&admin), &[], None).await;
    assert!(scoped.text.contains("<th>Projects</th>"), "{}", scoped.text);
    assert!(
        scoped
            .text
            .contains("<td class=\"projects\">default, team-x</td>"),
        "{}",
        scoped.text
    );
    assert!(scoped.text.contains("*.corp.internal"), "{}", scoped.text);

    assert_eq!(
        post(&w, "/gateways/gw/revoke", &alice, &[]).await.status,
        StatusCode::NOT_FOUND
    );
    let cross = page(
        &w.kms,
        Method::POST,
        "/gateways/gw/revoke",
        Some(&admin),
        &[("sec-fetch-site", "same-site")],
        None,
    )
    .await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN);
    let revoked = post(&w, "/gateways/gw/revoke", &admin, &[]).await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER);
    let gateways = w
        .kms
        .get("/v1/gateways", &w.kms.admin)
        .await
        .expect(StatusCode::OK);
    assert!(gateways
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g["name"] == "gw" && g["status"] == "revoked"));
    let ended = w
        .kms
        .get(&format!("/v1/sessions/{}", w.alice_session), &w.kms.admin)
        .await
        .expect(StatusCode::OK);
    assert_ne!(ended["session"]["status"], "active", "{ended}");
}

#[tokio::test]
async fn add_resource_form_sets_the_recording_policy() {
    let w = world("r", "kubectl get pods").await;
    let admin = sign_in(&w.kms, &w.kms.admin.clone()).await;
    let path = "/p/default/resources";
    let shown = page(&w.kms, Method::GET, path, Some(&admin), &[], None).await;
    assert!(
        shown.text.contains("<option value=\"deny\" selected>"),
        "deny by default"
    );

    let base = [
        ("name", "rec"),
        ("url", "https://10.0.0.2:6443"),
        ("gateway", "gw"),
        ("ssl_verify", "on"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut all = base.to_vec();
        all.extend_from_slice(extra);
        all
    };
    let refused = post(
        &w,
        path,
        &admin,
        &with(&[
            ("unrecorded_streams", "maybe"),
            ("recording_max_bytes", "lots"),
            ("recording_input_max_bytes", "2TiB"),
        ]),
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(field_error(&refused, "unrecorded_streams").is_some());
    assert!(field_error(&refused, "recording_max_bytes").is_some());
    assert!(field_error(&refused, "recording_input_max_bytes").is_some());
    let refused = post(
        &w,
        path,
        &admin,
        &with(&[
            ("recording_max_bytes", "1MiB"),
            ("recording_input_max_bytes", "64KiB"),
        ]),
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(field_error(&refused, "recording_input_max_bytes")
        .unwrap()
        .contains("must be at least the recording cap"));
    assert!(
        refused.text.contains("value=\"64KiB\""),
        "what was typed stays"
    );
    w.kms
        .get("/v1/resources/rec", &w.kms.admin)
        .await
        .expect(StatusCode::NOT_FOUND);

    let created = post(
        &w,
        path,
        &admin,
        &with(&[
            ("unrecorded_streams", "allow"),
            ("recording_max_bytes", "64KiB"),
            ("recording_input_max_bytes", "1MiB"),
        ]),
    )
    .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.text);
    let resource = w
        .kms
        .get("/v1/resources/rec", &w.kms.admin)
        .await
        .expect(StatusCode::OK);
    assert_eq!(resource["recording"]["unrecorded_streams"], "allow");
    assert_eq!(resource["recording"]["max_bytes"], 65_536);
    assert_eq!(resource["recording"]["max_input_bytes"], 1_048_576);
    let shown = page(
        &w.kms,
        Method::GET,
        "/p/default/resources/rec",
        Some(&admin),
        &[],
        None,
    )
    .await;
    assert!(
        shown
            .text
            .contains("unrecordable streams let through unrecorded; cap per stream 65536 bytes"),
        "{}",
        shown.text
    );
}
