//! The account forms: Add account never renders the token back and Access takes a duration;
//! Edit keeps the stored token unless a new one is typed.

use http::{Method, StatusCode};
use serde_json::Value;

use super::super::{page, sign_in, world, World};
use super::{field_error, form, post};
use crate::server::tests::SA_TOKEN;

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
    // The field keeps what was asked, to be corrected (it showed the default instead); the
    // command is for the longest the account allows.
    assert!(
        shown.text.contains(r#"name="duration" value="3h""#),
        "{}",
        shown.text
    );
    assert!(shown
        .text
        .contains("prod/ops --project default --duration 2h"));
    let unreadable = format!("{resource}?account=ops&duration=soon");
    let shown = page(&w.kms, Method::GET, &unreadable, Some(&admin), &[], None).await;
    assert!(shown.text.contains(r#"name="duration" value="soon""#));
    assert!(shown.text.contains("field-error"), "{}", shown.text);
}

/// The token the gateway `gw` would be given for a new admin session on `prod/admin`.
async fn token_for_a_new_session(w: &World) -> String {
    let id = w.kms.session_id("/v1", &w.kms.admin.clone(), "prod").await;
    let credential = w
        .kms
        .get(&format!("/v1/gateway/sessions/{id}/credential"), &w.gateway)
        .await
        .expect(StatusCode::OK);
    let sealed = serde_json::from_value(credential["sealed_token"].clone()).unwrap();
    let opened = crate::server::tests::gateway_sealing_key("gw").open(&sealed, &id, "gw");
    opened.unwrap().expose().to_owned()
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
