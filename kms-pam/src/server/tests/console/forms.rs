//! The console's forms over HTTP: each change goes through the API handler (same rights, same
//! validation), refusals show next to their field, tokens are never rendered back, and forms
//! from elsewhere are refused.

use http::{Method, StatusCode};
use serde_json::Value;

use super::{page, sign_in, world, Page, SAME};
use crate::server::tests::SA_TOKEN;

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
async fn add_account_form_never_renders_the_token_and_access_takes_a_duration() {
    let w = world("r", "kubectl get pods").await;
    let admin = sign_in(&w.kms, &w.kms.admin.clone()).await;
    let alice = sign_in(&w.kms, &w.alice).await;
    let path = "/p/default/resources/prod/accounts";
    let typed = "eyJ secret with spaces";

    let bad = [
        ("name", "ops"),
        ("token", typed),
        ("max_duration", "40d"),
        ("description", "<b>x</b>"),
    ];
    let refused = post(&w, path, &admin, &bad).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(field_error(&refused, "token")
        .unwrap()
        .contains("token must be"));
    assert!(field_error(&refused, "max_duration").is_some());
    assert!(
        !refused.text.contains("secret with spaces"),
        "the token is never rendered back"
    );
    assert!(refused.text.contains("&lt;b&gt;x&lt;/b&gt;"), "escaped");

    let good = [
        ("name", "ops"),
        ("token", SA_TOKEN),
        ("max_duration", "2h"),
        ("description", "operators"),
    ];
    let answer = post(&w, path, &alice, &good).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "a member may not add");
    let created = post(&w, path, &admin, &good).await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.text);
    let again = post(&w, path, &admin, &good).await;
    assert!(
        field_error(&again, "name").is_some(),
        "taken: {}",
        again.text
    );
    assert!(!again.text.contains(SA_TOKEN));

    let accounts = w
        .kms
        .get("/v1/accounts?resource=prod", &w.kms.admin)
        .await
        .expect(StatusCode::OK);
    let ops = accounts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "ops")
        .unwrap();
    assert_eq!(ops["max_duration_secs"], 7200);

    let resource = "/p/default/resources/prod";
    let shown = page(&w.kms, Method::GET, resource, Some(&admin), &[], None).await;
    assert!(shown.text.contains("operators") && !shown.text.contains(SA_TOKEN));
    assert!(shown
        .text
        .contains("pam access prod/ops --project default --duration 2h"));

    let asked = format!("{resource}?account=ops&duration=90m");
    let shown = page(&w.kms, Method::GET, &asked, Some(&admin), &[], None).await;
    assert!(
        shown
            .text
            .contains("pam access prod/ops --project default --duration 1h30m"),
        "{}",
        shown.text
    );
    assert!(
        shown
            .text
            .contains("pam access prod/admin --project default --duration 1h"),
        "others keep theirs"
    );
    let too_long = format!("{resource}?account=ops&duration=3h");
    let shown = page(&w.kms, Method::GET, &too_long, Some(&admin), &[], None).await;
    assert!(shown.text.contains("longer than this account allows"));
    assert!(shown
        .text
        .contains("prod/ops --project default --duration 2h"));
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

/// The token the gateway `gw` would be given for a new admin session on `prod/admin`.
async fn token_for_a_new_session(w: &super::World) -> String {
    let id = w.kms.session_id("/v1", &w.kms.admin.clone(), "prod").await;
    let credential = w
        .kms
        .get(&format!("/v1/gateway/sessions/{id}/credential"), &w.gateway)
        .await
        .expect(StatusCode::OK);
    credential["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn edit_account_form_keeps_the_token_unless_a_new_one_is_typed() {
    let w = world("r", "kubectl get pods").await;
    let admin = sign_in(&w.kms, &w.kms.admin.clone()).await;
    let alice = sign_in(&w.kms, &w.alice).await;
    let path = "/p/default/resources/prod/accounts/admin";

    // The form: current values, a blank write-only token field saying "token unchanged".
    let shown = page(&w.kms, Method::GET, path, Some(&admin), &[], None).await;
    assert_eq!(shown.status, StatusCode::OK);
    assert!(shown.text.contains("value=\"1h\""), "{}", shown.text);
    assert!(shown.text.contains("placeholder=\"token unchanged\""));
    assert!(
        !shown.text.contains(SA_TOKEN),
        "the token is never rendered"
    );
    let resource = page(
        &w.kms,
        Method::GET,
        "/p/default/resources/prod",
        Some(&admin),
        &[],
        None,
    )
    .await;
    assert!(
        resource.text.contains(&format!("href=\"{path}\"")),
        "an Edit link"
    );
    let member_view = page(
        &w.kms,
        Method::GET,
        "/p/default/resources/prod",
        Some(&alice),
        &[],
        None,
    )
    .await;
    assert!(!member_view.text.contains(&format!("href=\"{path}\"")));

    // Refusals next to their field; a typed token is not rendered back.
    let bad = [
        ("description", "<b>ops</b>"),
        ("token", "new secret with spaces"),
        ("max_duration", "soon"),
    ];
    let refused = post(&w, path, &admin, &bad).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(field_error(&refused, "token")
        .unwrap()
        .contains("token must be"));
    assert!(field_error(&refused, "max_duration").is_some());
    assert!(!refused.text.contains("secret with spaces"));
    assert!(refused.text.contains("&lt;b&gt;ops&lt;/b&gt;"), "escaped");

    // A member, a cross-site form: refused, nothing changed.
    let blank = [
        ("description", "on-call"),
        ("token", ""),
        ("max_duration", "2h"),
    ];
    let answer = post(&w, path, &alice, &blank).await;
    assert_eq!(
        answer.status,
        StatusCode::FORBIDDEN,
        "a member may not edit"
    );
    let answer = page(
        &w.kms,
        Method::POST,
        path,
        Some(&admin),
        &[("sec-fetch-site", "cross-site")],
        Some(&form(&blank)),
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "cross-site");
    let missing = post(
        &w,
        "/p/default/resources/prod/accounts/nope",
        &admin,
        &blank,
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    // Blank token: description and length change, the token stays.
    let saved = post(&w, path, &admin, &blank).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.text);
    assert_eq!(saved.headers["location"], "/p/default/resources/prod");
    let accounts = w
        .kms
        .get("/v1/accounts?resource=prod", &w.kms.admin)
        .await
        .expect(StatusCode::OK);
    assert_eq!(accounts[0]["description"], "on-call");
    assert_eq!(accounts[0]["max_duration_secs"], 7200);
    assert_eq!(token_for_a_new_session(&w).await, SA_TOKEN);

    // A new token replaces it; it shows nowhere.
    let rotated = "eyJhbGciOiJSUzI1NiJ9.rotated-by-the-console.sig";
    let with_token = [
        ("description", ""),
        ("token", rotated),
        ("max_duration", "30m"),
    ];
    let saved = post(&w, path, &admin, &with_token).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.text);
    assert_eq!(token_for_a_new_session(&w).await, rotated);
    let accounts = w
        .kms
        .get("/v1/accounts?resource=prod", &w.kms.admin)
        .await
        .expect(StatusCode::OK);
    assert!(
        accounts[0].get("description").is_none_or(Value::is_null),
        "cleared"
    );
    assert_eq!(accounts[0]["max_duration_secs"], 1800);
    let shown = page(&w.kms, Method::GET, path, Some(&admin), &[], None).await;
    assert!(!shown.text.contains(rotated) && !shown.text.contains(SA_TOKEN));
    w.kms.assert_never_leaked(rotated);

    // The API route behind the form: same rights, absent fields unchanged.
    let api = "/v1/resources/prod/accounts/admin";
    let body = serde_json::json!({ "max_duration_secs": 600 });
    let refused = w
        .kms
        .call(Method::PATCH, api, Some(&w.alice), body.clone())
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let bad = serde_json::json!({ "token": "" });
    let refused = w
        .kms
        .call(Method::PATCH, api, Some(&w.kms.admin), bad)
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    let changed = w
        .kms
        .call(Method::PATCH, api, Some(&w.kms.admin), body)
        .await
        .expect(StatusCode::OK);
    assert_eq!(changed["max_duration_secs"], 600);
    assert_eq!(token_for_a_new_session(&w).await, rotated);
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
