//! Who the console takes a browser for: a console session ends with the credential and the
//! standing it was opened with, a signed-in browser is asked before another user's sign-in link
//! switches it, and a user is an id, so a re-created name inherits nothing (issue 28).

use http::{Method, StatusCode};
use serde_json::Value;

use super::{page, sign_in, world, Kms, SAME};

/// Whether `cookie` still opens a console page (a sign-in redirect says it does not).
async fn signed_in(kms: &Kms, cookie: &str) -> bool {
    let answer = page(
        kms,
        Method::GET,
        "/p/default/sessions",
        Some(cookie),
        &[],
        None,
    )
    .await;
    match answer.status {
        StatusCode::OK => true,
        StatusCode::SEE_OTHER => {
            assert_eq!(answer.headers["location"], "/login");
            false
        }
        other => panic!("unexpected {other}: {}", answer.text),
    }
}

/// A console session is bound to the credential and the standing it was opened with: rotating
/// the user's token or disabling the user ends it, and enabling the user again does not bring
/// the old cookie back (before the fix both cookies kept working).
#[tokio::test]
async fn token_rotation_and_disable_end_the_users_console_sessions() {
    let w = world("deploy fix", "kubectl get").await;
    let admin = w.kms.admin.clone();
    let before = sign_in(&w.kms, &w.alice).await;
    let other = sign_in(&w.kms, &w.audrey).await;
    assert!(signed_in(&w.kms, &before).await);
    // A sign-in link asked for with the old token, not yet spent.
    let link = w
        .kms
        .post("/v1/console/links", &w.alice, Value::Null)
        .await
        .expect(StatusCode::CREATED);
    let link = link["path"].as_str().unwrap().to_owned();
    let rotated = w
        .kms
        .post("/v1/users/alice/token", &admin, Value::Null)
        .await
        .expect(StatusCode::OK);
    assert!(
        !signed_in(&w.kms, &before).await,
        "a console session outlived the token rotation"
    );
    assert!(signed_in(&w.kms, &other).await, "other users keep theirs");
    let late = page(&w.kms, Method::GET, &link, None, &[], None).await;
    assert_eq!(
        late.status,
        StatusCode::UNAUTHORIZED,
        "a link from before the rotation opened a session: {}",
        late.text
    );
    let token = rotated["token"].as_str().unwrap().to_owned();
    let again = sign_in(&w.kms, &token).await;
    assert!(signed_in(&w.kms, &again).await);
    w.kms
        .post("/v1/users/alice/disable", &admin, Value::Null)
        .await
        .expect(StatusCode::OK);
    assert!(!signed_in(&w.kms, &again).await);
    w.kms
        .post("/v1/users/alice/enable", &admin, Value::Null)
        .await
        .expect(StatusCode::OK);
    assert!(
        !signed_in(&w.kms, &again).await,
        "enabling the user again revived a console session from before the disable"
    );
    let fresh = sign_in(&w.kms, &token).await;
    assert!(signed_in(&w.kms, &fresh).await, "a new sign-in works");
    assert!(signed_in(&w.kms, &other).await);
}

/// The ids of the sessions a `GET …/sessions` answer lists.
fn listed_ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect()
}

/// A user created with the name of a deleted one does not inherit the deleted user's sessions:
/// not in their own list, not in their console list, search or CSV export (whose search looks
/// inside recorded commands), and an admin's `?user=NAME` means the live user. The deleted
/// user's sessions stay theirs (an admin finds them by the old name while nobody holds it).
/// Before the fix every listing filtered by name, and the new alice saw the old alice's session.
#[tokio::test]
async fn a_recreated_user_name_does_not_inherit_the_deleted_users_sessions() {
    let w = world("old alice's reason", "kubectl rollout").await;
    let admin = w.kms.admin.clone();
    w.kms
        .delete("/v1/users/alice", &admin)
        .await
        .expect(StatusCode::NO_CONTENT);
    let deleted = w
        .kms
        .get("/v1/sessions?user=alice", &admin)
        .await
        .expect(StatusCode::OK);
    assert_eq!(listed_ids(&deleted), vec![w.alice_session.clone()]);

    let alice = w.kms.user("alice", false).await;
    w.kms.grant("prod", "alice", 3600).await;
    let fresh = w.kms.session_id("/v1", &alice, "prod").await;
    let own = w
        .kms
        .get("/v1/sessions", &alice)
        .await
        .expect(StatusCode::OK);
    assert_eq!(listed_ids(&own), vec![fresh.clone()], "the API list");
    let asked = w
        .kms
        .get("/v1/sessions?user=alice", &admin)
        .await
        .expect(StatusCode::OK);
    assert_eq!(listed_ids(&asked), vec![fresh.clone()], "an admin's ?user=");

    let cookie = sign_in(&w.kms, &alice).await;
    for path in [
        "/p/default/sessions",
        "/p/default/sessions?q=rollout",
        "/p/default/sessions?q=alice",
        "/p/default/sessions?format=csv",
        "/p/default/sessions?format=json",
        "/p/default/sessions?q=rollout&format=csv",
    ] {
        let answer = page(&w.kms, Method::GET, path, Some(&cookie), &[], None).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.text);
        assert!(
            !answer.text.contains(&w.alice_session) && !answer.text.contains("old alice"),
            "{path} shows the deleted alice's session to the new one: {}",
            answer.text
        );
    }
    let listed = page(
        &w.kms,
        Method::GET,
        "/p/default/sessions?format=csv",
        Some(&cookie),
        &[],
        None,
    )
    .await;
    assert!(listed.text.contains(&fresh), "{}", listed.text);
}

/// Issue 28 (low), login CSRF: alice sends a signed-in admin her own one-time link. Opening it
/// does not switch the admin's browser to alice's account: the console asks first, and keeps the
/// link unspent; only a same-origin confirmation spends it. A cross-site POST is refused. Before
/// the fix the GET spent the link and replaced the admin's session with alice's.
#[tokio::test]
async fn a_signed_in_browser_is_asked_before_another_users_link_signs_it_in() {
    let w = world("deploy fix", "kubectl get").await;
    let admin = sign_in(&w.kms, &w.kms.admin.clone()).await;
    let link = w
        .kms
        .post("/v1/console/links", &w.alice, Value::Null)
        .await
        .expect(StatusCode::CREATED);
    let path = link["path"].as_str().unwrap().to_owned();

    let asked = page(&w.kms, Method::GET, &path, Some(&admin), &[], None).await;
    assert_eq!(asked.status, StatusCode::OK, "{}", asked.text);
    assert!(asked.headers.get("set-cookie").is_none(), "no new session");
    assert!(
        asked.text.contains("Switch user?") && asked.text.contains("signed in to kms-pam as"),
        "{}",
        asked.text
    );
    assert!(signed_in(&w.kms, &admin).await, "the admin stays signed in");

    let cross = &[("sec-fetch-site", "cross-site")];
    let forged = page(&w.kms, Method::POST, &path, Some(&admin), cross, Some("")).await;
    assert!(
        forged.headers.get("set-cookie").is_none(),
        "{}",
        forged.text
    );
    assert_ne!(forged.status, StatusCode::SEE_OTHER);

    let confirmed = page(&w.kms, Method::POST, &path, Some(&admin), SAME, Some("")).await;
    assert_eq!(
        confirmed.status,
        StatusCode::SEE_OTHER,
        "{}",
        confirmed.text
    );
    let cookie = confirmed.headers["set-cookie"].to_str().unwrap().to_owned();
    let alice = cookie
        .trim_start_matches("kms_console=")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let home = page(
        &w.kms,
        Method::GET,
        "/p/default/resources",
        Some(&alice),
        &[],
        None,
    )
    .await;
    assert!(home.text.contains("alice"), "{}", home.text);
    let again = page(&w.kms, Method::POST, &path, Some(&admin), SAME, Some("")).await;
    assert_eq!(
        again.status,
        StatusCode::UNAUTHORIZED,
        "the link works once"
    );
}

/// The confirmation page puts the link's code in its form target, so a "code" that is a path
/// (`..%2F..%2Fgateways%2Fgw%2Frevoke`, decoded by the router) would aim the admin's click at
/// another console route with a same-origin POST. Such a code is refused like a spent link, and
/// no form is shown (the review of the login CSRF fix found the hole before it landed).
#[tokio::test]
async fn a_link_code_that_is_a_path_is_refused_without_a_form() {
    let w = world("deploy fix", "kubectl get").await;
    let admin = sign_in(&w.kms, &w.kms.admin.clone()).await;
    for path in [
        "/login/link/..%2F..%2Fgateways%2Fgw%2Frevoke",
        "/login/link/..%2F..%2Flogout",
        "/login/link/%2E%2E%2Fp%2Fdefault%2Fmembers",
    ] {
        let answer = page(&w.kms, Method::GET, path, Some(&admin), &[], None).await;
        assert_eq!(
            answer.status,
            StatusCode::UNAUTHORIZED,
            "{path}: {}",
            answer.text
        );
        assert!(!answer.text.contains("action=\"/login/link/"), "{path}");
        assert!(
            !answer.text.contains("Switch user?"),
            "{path}: {}",
            answer.text
        );
    }
    assert!(signed_in(&w.kms, &admin).await, "the admin stays signed in");
}
