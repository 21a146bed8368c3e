//! The web console over plain HTTP (rights on every route, sign-in, CSRF refusals, escaping)
//! and in a real headless Chromium driven through chromedriver (`console_browser`).

mod browser;
mod driver;
mod forms;
mod session_page;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};

use super::{session_body, Kms};
use crate::audit::{
    AuditEvent, AuditEventKind, AuditSink, ChainingSink, MemoryAuditSink, RequestFinished,
    RequestStarted,
};
use crate::kube::RequestInfo;
use crate::session::SessionId;

/// A page answer.
pub(super) struct Page {
    pub(super) status: StatusCode,
    pub(super) headers: http::HeaderMap,
    pub(super) text: String,
}

/// Sends a console request with `cookie` (if any) and extra `headers`.
pub(super) async fn page(
    kms: &Kms,
    method: Method,
    path: &str,
    cookie: Option<&str>,
    headers: &[(&str, &str)],
    form: Option<&str>,
) -> Page {
    let mut request = http::Request::builder()
        .method(method)
        .uri(format!("http://{}{path}", kms.addr));
    if let Some(cookie) = cookie {
        request = request.header("cookie", format!("kms_console={cookie}"));
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if form.is_some() {
        request = request.header("content-type", "application/x-www-form-urlencoded");
    }
    let body = Full::new(Bytes::from(form.unwrap_or("").to_owned()));
    let response = kms
        .client
        .request(request.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Page {
        status,
        headers,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// Signs `token`'s user in through a one-time link; returns the cookie value.
pub(super) async fn sign_in(kms: &Kms, token: &str) -> String {
    let link = kms
        .post("/v1/console/links", token, Value::Null)
        .await
        .expect(StatusCode::CREATED);
    let path = link["path"].as_str().unwrap().to_owned();
    let answer = page(kms, Method::GET, &path, None, &[], None).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text);
    let cookie = answer.headers["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    let again = page(kms, Method::GET, &path, None, &[], None).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED, "links work once");
    cookie
        .trim_start_matches("kms_console=")
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

/// Chained events of `kubectl get pods` as a gateway records them, with `command` as the
/// `Kubectl-Command` header.
pub(super) fn kubectl(session: &str, command: &str) -> Vec<AuditEvent> {
    let chained = ChainingSink::new(MemoryAuditSink::new())
        .with_signer(std::sync::Arc::new(super::gateway_audit_key("gw")));
    let path = "/api/v1/namespaces/default/pods";
    let started = RequestStarted {
        request_id: 1,
        method: "GET".into(),
        path: path.into(),
        query: None,
        info: RequestInfo::classify(&http::Method::GET, path, None),
        kubectl_command: Some(command.into()),
        kubectl_session: Some("k1".into()),
        user_agent: None,
    };
    let finished = RequestFinished {
        request_id: 1,
        status: 200,
        bytes_in: 0,
        bytes_out: 10,
        duration_ms: 1,
        error: None,
    };
    for kind in [
        AuditEventKind::RequestStarted(Box::new(started)),
        AuditEventKind::RequestFinished(finished),
    ] {
        chained
            .record(AuditEvent::now(SessionId::new(session), kind))
            .unwrap();
    }
    chained.inner().events()
}

/// The world of these tests: gateway `gw`, resource `prod`, member `alice` and auditor
/// `audrey` in `default`, outsider `olga`; alice has a session with `reason` whose recorded
/// kubectl command is `command`; the admin has one too.
pub(super) struct World {
    pub(super) kms: Kms,
    pub(super) gateway: String,
    pub(super) alice: String,
    pub(super) audrey: String,
    pub(super) olga: String,
    pub(super) alice_session: String,
    pub(super) admin_session: String,
}

pub(super) async fn world(reason: &str, command: &str) -> World {
    let kms = Kms::start().await;
    let gateway = kms.gateway("gw").await;
    kms.resource("prod", "gw").await;
    let alice = kms.user("alice", false).await;
    let audrey = kms.user("audrey", false).await;
    let olga = kms.user("olga", false).await;
    kms.member("default", "alice", "member").await;
    kms.member("default", "audrey", "auditor").await;
    kms.grant("prod", "alice", 3600).await;
    let mut body = session_body("prod", 600);
    body["reason"] = json!(reason);
    let created = kms
        .post("/v1/sessions", &alice, body)
        .await
        .expect(StatusCode::CREATED);
    let alice_session = created["session"]["id"].as_str().unwrap().to_owned();
    let admin_session = kms.session_id("/v1", &kms.admin.clone(), "prod").await;
    let events = kubectl(&alice_session, command);
    kms.post(
        "/v1/gateway/events",
        &gateway,
        json!({ "events": events.clone() }),
    )
    .await
    .expect(StatusCode::OK);
    World {
        kms,
        gateway,
        alice,
        audrey,
        olga,
        alice_session,
        admin_session,
    }
}

const SAME: &[(&str, &str)] = &[("sec-fetch-site", "same-origin")];

#[tokio::test]
async fn pages_need_a_console_session_and_carry_the_security_headers() {
    let w = world("deploy fix", "kubectl get").await;
    for path in [
        "/",
        "/p/default/sessions",
        "/gateways",
        "/p/default/resources",
    ] {
        let answer = page(&w.kms, Method::GET, path, None, &[], None).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(answer.headers["location"], "/login", "{path}");
        let forged = page(&w.kms, Method::GET, path, Some("forged"), &[], None).await;
        assert_eq!(forged.headers["location"], "/login", "{path}");
    }
    // An API token is not a console session.
    let bearer = [("authorization", format!("Bearer {}", w.kms.admin))];
    let bearer: Vec<(&str, &str)> = bearer.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let answer = page(
        &w.kms,
        Method::GET,
        "/p/default/sessions",
        None,
        &bearer,
        None,
    )
    .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);

    let cookie = sign_in(&w.kms, &w.alice).await;
    let home = page(&w.kms, Method::GET, "/", Some(&cookie), &[], None).await;
    assert_eq!(home.headers["location"], "/p/default/sessions");
    let sessions = page(
        &w.kms,
        Method::GET,
        "/p/default/sessions",
        Some(&cookie),
        &[],
        None,
    )
    .await;
    assert_eq!(sessions.status, StatusCode::OK);
    let csp = sessions.headers["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(
        csp.contains("default-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(sessions.headers["x-frame-options"], "DENY");
    assert_eq!(sessions.headers["referrer-policy"], "no-referrer");
    // The API is unchanged.
    w.kms
        .get("/v1/whoami", &w.alice)
        .await
        .expect(StatusCode::OK);
}

#[tokio::test]
async fn rights_on_every_console_route() {
    let w = world("deploy fix", "kubectl get").await;
    w.kms.project("team").await;
    let admin = sign_in(&w.kms, &w.kms.admin.clone()).await;
    let alice = sign_in(&w.kms, &w.alice).await;
    let audrey = sign_in(&w.kms, &w.audrey).await;
    let olga = sign_in(&w.kms, &w.olga).await;
    let mine = format!("/p/default/sessions/{}", w.alice_session);
    let theirs = format!("/p/default/sessions/{}", w.admin_session);
    let cases: Vec<(&str, String, [u16; 4])> = vec![
        // (what, path, [admin, member alice, auditor audrey, olga: in no project but default])
        ("list", "/p/default/sessions".into(), [200, 200, 200, 200]),
        ("alice's session", mine.clone(), [200, 200, 200, 404]),
        ("other's session", theirs.clone(), [200, 404, 200, 404]),
        (
            "export",
            format!("{theirs}?format=json"),
            [200, 404, 200, 404],
        ),
        (
            "alice's chain",
            format!("{mine}/verify"),
            [200, 200, 200, 404],
        ),
        (
            "other's chain",
            format!("{theirs}/verify"),
            [200, 404, 200, 404],
        ),
        (
            "terminate form",
            format!("{theirs}/terminate"),
            [200, 404, 404, 404],
        ),
        (
            "resources",
            "/p/default/resources".into(),
            [200, 200, 200, 200],
        ),
        (
            "resource",
            "/p/default/resources/prod".into(),
            [200, 200, 200, 200],
        ),
        // As `GET /v1/projects/{p}/members`: administrators and auditors read it.
        ("members", "/p/default/members".into(), [200, 403, 200, 403]),
        (
            "account edit form",
            "/p/default/resources/prod/accounts/admin".into(),
            [200, 403, 403, 403],
        ),
        (
            "no account",
            "/p/default/resources/prod/accounts/nope".into(),
            [404, 403, 403, 403],
        ),
        (
            "other project",
            "/p/team/sessions".into(),
            [200, 404, 404, 404],
        ),
        (
            "other project's members",
            "/p/team/members".into(),
            [200, 404, 404, 404],
        ),
        ("gateways", "/gateways".into(), [200, 404, 404, 404]),
        (
            "no project",
            "/p/nope/sessions".into(),
            [404, 404, 404, 404],
        ),
        (
            "no session",
            "/p/default/sessions/nope".into(),
            [404, 404, 404, 404],
        ),
    ];
    for (what, path, expected) in cases {
        for (who, cookie, status) in [
            ("admin", &admin, expected[0]),
            ("alice", &alice, expected[1]),
            ("audrey", &audrey, expected[2]),
            ("olga", &olga, expected[3]),
        ] {
            let answer = page(&w.kms, Method::GET, &path, Some(cookie), &[], None).await;
            assert_eq!(
                answer.status.as_u16(),
                status,
                "{what} {path} as {who}: {}",
                answer.text
            );
        }
    }
    // Members see only their own sessions in the list and in exports.
    let list = page(
        &w.kms,
        Method::GET,
        "/p/default/sessions?format=json",
        Some(&alice),
        &[],
        None,
    )
    .await;
    let rows: Value = serde_json::from_str(&list.text).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
    let all = page(
        &w.kms,
        Method::GET,
        "/p/default/sessions?format=json",
        Some(&audrey),
        &[],
        None,
    )
    .await;
    let rows: Value = serde_json::from_str(&all.text).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 2, "{rows}");

    // Terminating: only project admins, only from the console's own pages.
    let terminate = format!("{theirs}/terminate");
    for (cookie, status) in [(&alice, 403), (&audrey, 403)] {
        let answer = page(
            &w.kms,
            Method::POST,
            &terminate,
            Some(cookie),
            SAME,
            Some(""),
        )
        .await;
        assert_eq!(answer.status.as_u16(), status, "{}", answer.text);
    }
    let cross = [("sec-fetch-site", "cross-site")];
    let answer = page(
        &w.kms,
        Method::POST,
        &terminate,
        Some(&admin),
        &cross,
        Some(""),
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    let evil = [("origin", "http://evil.example")];
    let answer = page(
        &w.kms,
        Method::POST,
        &terminate,
        Some(&admin),
        &evil,
        Some(""),
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    let answer = page(
        &w.kms,
        Method::POST,
        &terminate,
        Some(&admin),
        &[],
        Some(""),
    )
    .await;
    assert_eq!(
        answer.status,
        StatusCode::FORBIDDEN,
        "no Origin, no Sec-Fetch-Site"
    );
    let answer = page(
        &w.kms,
        Method::POST,
        &terminate,
        Some(&admin),
        SAME,
        Some(""),
    )
    .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text);
    let view = w
        .kms
        .get(
            &format!("/v1/sessions/{}", w.admin_session),
            &w.kms.admin.clone(),
        )
        .await;
    assert!(
        view.json.to_string().contains(r#""status":"terminated""#),
        "{}",
        view.json
    );
}

#[tokio::test]
async fn search_filters_pages_and_exports() {
    let w = world("rotate certs", "kubectl rollout").await;
    let admin = sign_in(&w.kms, &w.kms.admin.clone()).await;
    let get = |path: String| {
        let kms = &w.kms;
        let admin = admin.clone();
        async move { page(kms, Method::GET, &path, Some(&admin), &[], None).await }
    };
    let found = get("/p/default/sessions?q=rollout".into()).await;
    assert!(found.text.contains("rotate certs"), "{}", found.text);
    assert!(
        !found.text.contains("testing"),
        "the admin's session has no rollout"
    );
    let none = get("/p/default/sessions?q=nothing-like-this".into()).await;
    assert!(none.text.contains("No session matches"), "{}", none.text);
    let csv = get("/p/default/sessions?status=active&user=alice&format=csv".into()).await;
    assert_eq!(csv.headers["content-type"], "text/csv; charset=utf-8");
    assert_eq!(csv.text.lines().count(), 2, "{}", csv.text);
    assert!(csv.text.contains("\"rotate certs\""));
    let detail = get(format!("/p/default/sessions/{}", w.alice_session)).await;
    assert!(detail.text.contains("kubectl rollout"), "{}", detail.text);
    assert!(detail.text.contains("/api/v1/namespaces/default/pods"));
    // The chain check is its own page, linked (and fetched by console.js) from the session's.
    let verify = format!("/p/default/sessions/{}/verify", w.alice_session);
    assert!(
        detail
            .text
            .contains(&format!("data-verify=\"{}\"", verify.replace('-', "%2D"))),
        "{}",
        detail.text
    );
    let verdict = get(verify).await;
    // The session is still active: its record holds so far, but KMS has signed no head.
    assert!(
        verdict.text.contains("id=\"chain-verdict\"") && verdict.text.contains(">unsealed<"),
        "{}",
        verdict.text
    );
}

#[tokio::test]
async fn user_strings_are_escaped_and_disabled_users_are_signed_out() {
    let payload = "<script>document.title='pwned'</script><img src=x onerror=alert(1)>";
    let w = world(payload, payload).await;
    let admin = sign_in(&w.kms, &w.kms.admin.clone()).await;
    let alice = sign_in(&w.kms, &w.alice).await;
    for path in [
        "/p/default/sessions".to_owned(),
        format!("/p/default/sessions/{}", w.alice_session),
    ] {
        let answer = page(&w.kms, Method::GET, &path, Some(&admin), &[], None).await;
        assert!(
            !answer.text.contains("<script>document"),
            "{path}: {}",
            answer.text
        );
        assert!(!answer.text.contains("<img src=x"), "{path}");
        assert!(
            answer.text.contains("&lt;script&gt;document.title="),
            "{path}"
        );
    }
    w.kms
        .post("/v1/users/alice/disable", &w.kms.admin.clone(), Value::Null)
        .await
        .expect(StatusCode::OK);
    let answer = page(
        &w.kms,
        Method::GET,
        "/p/default/sessions",
        Some(&alice),
        &[],
        None,
    )
    .await;
    assert_eq!(answer.headers["location"], "/login");
    let refused = page(&w.kms, Method::GET, "/logout", Some(&admin), &[], None).await;
    assert_eq!(refused.status, StatusCode::METHOD_NOT_ALLOWED);
    let out = page(
        &w.kms,
        Method::POST,
        "/logout",
        Some(&admin),
        SAME,
        Some(""),
    )
    .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    let after = page(
        &w.kms,
        Method::GET,
        "/p/default/sessions",
        Some(&admin),
        &[],
        None,
    )
    .await;
    assert_eq!(after.headers["location"], "/login", "signed out");
}

#[tokio::test]
async fn the_token_form_signs_in_and_refuses_bad_tokens() {
    let w = world("x", "kubectl get").await;
    let bad = page(
        &w.kms,
        Method::POST,
        "/login",
        None,
        SAME,
        Some("token=kmsu_nope"),
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    let form = format!("token={}", w.alice);
    let cross = page(
        &w.kms,
        Method::POST,
        "/login",
        None,
        &[("sec-fetch-site", "cross-site")],
        Some(&form),
    )
    .await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN);
    let https = [
        ("sec-fetch-site", "same-origin"),
        ("x-forwarded-proto", "https"),
    ];
    let good = page(&w.kms, Method::POST, "/login", None, &https, Some(&form)).await;
    assert_eq!(good.status, StatusCode::SEE_OTHER);
    let cookie = good.headers["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
}

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
