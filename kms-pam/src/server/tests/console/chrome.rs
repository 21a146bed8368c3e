//! What every page wears: the tabs a user may follow, error pages titled by what happened, hints
//! an empty page gives as commands the CLI takes, and
//! status badges that do not repeat themselves.

use http::{Method, StatusCode};
use serde_json::json;

use super::{page, sign_in, world, Kms, SAME};

#[tokio::test]
async fn tabs_titles_and_badges_say_what_applies() {
    let w = world("deploy fix", "kubectl get").await;
    let alice = sign_in(&w.kms, &w.alice).await;
    let admin = sign_in(&w.kms, &w.kms.admin).await;
    let get = |path: &'static str, cookie: String| {
        let kms = &w.kms;
        async move { page(kms, Method::GET, path, Some(&cookie), &[], None).await }
    };

    // The Gateways tab is the organisation admins' (the page is a 404 to a member).
    let mine = get("/p/default/sessions", alice.clone()).await;
    assert!(!mine.text.contains(r#"href="/gateways""#), "{}", mine.text);
    assert_eq!(
        get("/gateways", alice.clone()).await.status,
        StatusCode::NOT_FOUND
    );
    let theirs = get("/p/default/sessions", admin.clone()).await;
    assert!(theirs.text.contains(r#"href="/gateways""#));

    // A refusal is titled as one, not "Something went wrong".
    let path = format!("/p/default/sessions/{}/terminate", w.admin_session);
    let refused = page(&w.kms, Method::POST, &path, Some(&alice), SAME, Some("")).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
    assert!(
        refused.text.contains("403 · Not allowed"),
        "{}",
        refused.text
    );
    assert!(!refused.text.contains("Something went wrong"));

    // A terminated session's badge is "terminated", not "terminated · termination".
    w.kms
        .post(
            &format!("/v1/sessions/{}/terminate", w.alice_session),
            &w.kms.admin,
            json!({}),
        )
        .await
        .expect(StatusCode::OK);
    let list = get("/p/default/sessions", admin).await;
    assert!(list.text.contains(">terminated</span>"), "{}", list.text);
    assert!(!list.text.contains("terminated · termination"));
}

#[tokio::test]
async fn the_empty_resources_pages_hint_is_a_command_the_cli_takes() {
    let kms = Kms::start().await;
    let cookie = sign_in(&kms, &kms.admin).await;
    let empty = page(
        &kms,
        Method::GET,
        "/p/default/resources",
        Some(&cookie),
        &[],
        None,
    )
    .await;
    assert_eq!(empty.status, StatusCode::OK);
    // `pam resource create` takes the kind first (it lacked it).
    assert!(
        empty.text.contains(
            "kms-pam pam resource create kubernetes NAME --url https://API-SERVER --gateway GATEWAY"
        ),
        "{}",
        empty.text
    );
}
