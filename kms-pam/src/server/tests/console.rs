//! The web console over plain HTTP (rights on every route, sign-in, CSRF refusals, escaping)
//! and in a real headless Chromium driven through chromedriver (`console_browser`).

mod browser;
mod chrome;
mod driver;
mod forms;
mod identity;
mod search;
mod session_page;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};

use super::session_body;
pub(super) use super::Kms;
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
        impersonation: None,
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

pub(super) const SAME: &[(&str, &str)] = &[("sec-fetch-site", "same-origin")];

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
    // The exports carry what the table shows: the command count and the duration.
    let header = csv.text.lines().next().unwrap();
    assert!(
        header.ends_with(
            ",reason,commands,duration_secs,identity_issuer,identity_subject,identity_email"
        ),
        "{header}"
    );
    assert!(
        csv.text.lines().nth(1).unwrap().contains(",\"1\","),
        "{}",
        csv.text
    );
    let json = get("/p/default/sessions?status=active&user=alice&format=json".into()).await;
    let rows: Value = serde_json::from_str(&json.text).unwrap();
    assert_eq!(rows[0]["commands"], 1, "{rows}");
    assert!(rows[0]["duration_secs"].is_u64(), "{rows}");
    let detail = get(format!("/p/default/sessions/{}", w.alice_session)).await;
    assert!(detail.text.contains("kubectl rollout"), "{}", detail.text);
    assert!(detail.text.contains("/api/v1/namespaces/default/pods"));
    // The chain check is its own page, linked (and fetched by console.js) from the session's.
    let verify = format!("/p/default/sessions/{}/verify", w.alice_session);
    assert!(
        detail.text.contains(&format!("data-verify=\"{verify}\"")),
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
