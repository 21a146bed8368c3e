//! The web console over plain HTTP (rights on every route, sign-in, CSRF refusals, escaping)
//! and in a real headless Chromium driven through chromedriver (`console_browser`).

mod browser;
mod forms;

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
    assert!(
        verdict.text.contains("id=\"chain-verdict\"") && verdict.text.contains(">intact<"),
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

/// Three requests: two of one kubectl invocation (`Kubectl-Session` k1) and one from a client
/// without the header, chained for `session`.
fn three_requests(session: &str) -> Vec<AuditEvent> {
    let chained = ChainingSink::new(MemoryAuditSink::new())
        .with_signer(std::sync::Arc::new(super::gateway_audit_key("gw")));
    let path = "/api/v1/namespaces/default/pods";
    for (id, invocation) in [(1, Some("k1")), (2, Some("k1")), (3, None)] {
        let started = RequestStarted {
            request_id: id,
            method: "GET".into(),
            path: path.into(),
            query: None,
            info: RequestInfo::classify(&http::Method::GET, path, None),
            kubectl_command: invocation.map(|_| "kubectl get pods".into()),
            kubectl_session: invocation.map(Into::into),
            user_agent: (id == 1).then(|| "kubectl/v1.32.0 <linux/amd64>".into()),
        };
        chained
            .record(AuditEvent::now(
                SessionId::new(session),
                AuditEventKind::RequestStarted(Box::new(started)),
            ))
            .unwrap();
    }
    chained.inner().events()
}

#[tokio::test]
async fn the_sessions_page_counts_commands_as_the_session_groups_them() {
    let w = world("count", "kubectl get pods").await;
    let events = three_requests(&w.admin_session);
    w.kms
        .post(
            "/v1/gateway/events",
            &w.gateway,
            json!({ "events": events }),
        )
        .await
        .expect(StatusCode::OK);
    let grouped = w
        .kms
        .get(&format!("/v1/sessions/{}", w.admin_session), &w.kms.admin)
        .await
        .expect(StatusCode::OK);
    let grouped = grouped["commands"].as_array().unwrap().len();
    assert_eq!(grouped, 2);
    let admin = sign_in(&w.kms, &w.kms.admin.clone()).await;
    let list = page(
        &w.kms,
        Method::GET,
        "/p/default/sessions",
        Some(&admin),
        &[],
        None,
    )
    .await;
    // The Commands column (7th) of each session's row.
    let count_of = |id: &str| {
        let encoded = percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC);
        let row = &list.text[list.text.find(&format!("/sessions/{encoded}\"")).unwrap()..];
        let cell = row.split("<td>").nth(6).unwrap();
        cell[..cell.find('<').unwrap()].to_owned()
    };
    assert_eq!(count_of(&w.admin_session), grouped.to_string());
    assert_eq!(count_of(&w.alice_session), "1");
    let detail = format!("/p/default/sessions/{}", w.admin_session);
    let detail = page(&w.kms, Method::GET, &detail, Some(&admin), &[], None).await;
    assert!(
        detail.text.contains("kubectl/v1.32.0 &lt;linux/amd64&gt;"),
        "the first request's user agent, escaped: {}",
        detail.text
    );
}

/// Issue 14 point 3 in the console: a command leads with what its requests did, and a claim
/// they contradict (a `kubectl get` that deleted) is flagged with why.
#[tokio::test]
async fn a_claimed_get_that_deleted_is_flagged_on_the_session_page() {
    let w = world("cleanup", "kubectl get").await;
    let chained = ChainingSink::resume(
        MemoryAuditSink::new(),
        [(
            SessionId::new(&w.alice_session),
            crate::audit::ChainHead {
                seq: 2,
                hash: stored_head(&w).await,
            },
        )]
        .into(),
    )
    .with_signer(std::sync::Arc::new(super::gateway_audit_key("gw")));
    let path = "/api/v1/namespaces/default/configmaps/app";
    let delete = RequestStarted {
        request_id: 2,
        method: "DELETE".into(),
        path: path.into(),
        query: None,
        info: RequestInfo::classify(&http::Method::DELETE, path, None),
        kubectl_command: Some("kubectl get".into()),
        kubectl_session: Some("k1".into()),
        user_agent: None,
    };
    chained
        .record(AuditEvent::now(
            SessionId::new(&w.alice_session),
            AuditEventKind::RequestStarted(Box::new(delete)),
        ))
        .unwrap();
    w.kms
        .post(
            "/v1/gateway/events",
            &w.gateway,
            json!({ "events": chained.inner().events() }),
        )
        .await
        .expect(StatusCode::OK);
    let admin = sign_in(&w.kms, &w.kms.admin.clone()).await;
    let shown = page(
        &w.kms,
        Method::GET,
        &format!("/p/default/sessions/{}", w.alice_session),
        Some(&admin),
        &[],
        None,
    )
    .await;
    assert_eq!(shown.status, StatusCode::OK);
    assert!(
        shown.text.contains("<code>kubectl delete</code>"),
        "{}",
        shown.text
    );
    assert!(shown.text.contains("mismatch"), "{}", shown.text);
    assert!(
        shown.text.contains("deleted configmaps/app in default"),
        "{}",
        shown.text
    );
}

/// The hash of the last event stored for alice's session.
async fn stored_head(w: &World) -> String {
    let bundle = w
        .kms
        .get(
            &format!("/v1/sessions/{}/export", w.alice_session),
            &w.kms.admin,
        )
        .await
        .expect(StatusCode::OK);
    let events = bundle["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    events[1]["hash"].as_str().unwrap().to_owned()
}

/// kubectl's header-less first request (its version dispatcher's `GET /version`) is folded into
/// the command after it, by the API's grouping and by the Sessions page's count alike.
#[tokio::test]
async fn the_count_folds_kubectls_header_less_first_request() {
    let w = world("count", "kubectl get pods").await;
    let chained = ChainingSink::new(MemoryAuditSink::new())
        .with_signer(std::sync::Arc::new(super::gateway_audit_key("gw")));
    let requests = [
        ("/version", None, "kubectl-dispatcher/v1.0 (linux/amd64)"),
        (
            "/api/v1/namespaces/default/pods",
            Some("k9"),
            "kubectl/v1.32.4",
        ),
    ];
    for (id, (path, invocation, agent)) in (1..).zip(requests) {
        let started = RequestStarted {
            request_id: id,
            method: "GET".into(),
            path: path.into(),
            query: None,
            info: RequestInfo::classify(&http::Method::GET, path, None),
            kubectl_command: invocation.map(|_| "kubectl get".into()),
            kubectl_session: invocation.map(Into::into),
            user_agent: Some(agent.into()),
        };
        chained
            .record(AuditEvent::now(
                SessionId::new(&w.admin_session),
                AuditEventKind::RequestStarted(Box::new(started)),
            ))
            .unwrap();
    }
    w.kms
        .post(
            "/v1/gateway/events",
            &w.gateway,
            json!({ "events": chained.inner().events() }),
        )
        .await
        .expect(StatusCode::OK);
    let grouped = w
        .kms
        .get(&format!("/v1/sessions/{}", w.admin_session), &w.kms.admin)
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        grouped["commands"].as_array().unwrap().len(),
        1,
        "{grouped}"
    );
    let admin = sign_in(&w.kms, &w.kms.admin.clone()).await;
    let list = page(
        &w.kms,
        Method::GET,
        "/p/default/sessions",
        Some(&admin),
        &[],
        None,
    )
    .await;
    // The Commands column (7th) of the session's row.
    let encoded =
        percent_encoding::utf8_percent_encode(&w.admin_session, percent_encoding::NON_ALPHANUMERIC);
    let row = &list.text[list.text.find(&format!("/sessions/{encoded}\"")).unwrap()..];
    let cell = row.split("<td>").nth(6).unwrap();
    assert_eq!(&cell[..cell.find('<').unwrap()], "1", "{}", list.text);
}

/// Opens a session on `prod` for `token` with `user_agent` as the request's `User-Agent`.
async fn session_with_agent(kms: &Kms, token: &str, user_agent: &[u8]) -> String {
    let body = serde_json::to_vec(&session_body("prod", 600)).unwrap();
    let request = http::Request::post(format!("http://{}/v1/sessions", kms.addr))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .header(
            "user-agent",
            http::HeaderValue::from_bytes(user_agent).unwrap(),
        )
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = kms.client.request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let created: Value = serde_json::from_slice(&bytes).unwrap();
    created["session"]["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_session_page_shows_where_the_session_was_requested_from() {
    let w = world("origin", "kubectl get pods").await;
    let payload = "kms-pam/0.1.0 <img src=x onerror=\"window.pwned=1\">";
    let id = session_with_agent(&w.kms, &w.alice, payload.as_bytes()).await;
    let alice = sign_in(&w.kms, &w.alice).await;
    let path = format!("/p/default/sessions/{id}");
    let shown = page(&w.kms, Method::GET, &path, Some(&alice), &[], None).await;
    assert_eq!(shown.status, StatusCode::OK);
    let text = &shown.text;
    let address = &text[text.find("Client address").unwrap()..];
    assert!(
        address.starts_with("Client address</dt><dd class=\"mono\">127.0.0.1</dd>"),
        "the peer KMS saw: {address}"
    );
    assert!(
        text.contains("kms-pam/0.1.0 &lt;img src=x onerror=&quot;window.pwned=1&quot;&gt;"),
        "the CLI's user agent, escaped: {text}"
    );
    assert!(!text.contains("<img src=x"), "{text}");

    // The JSON export of the session and the API's show carry both.
    let export = format!("{path}?format=json");
    let export = page(&w.kms, Method::GET, &export, Some(&alice), &[], None).await;
    let export: Value = serde_json::from_str(&export.text).unwrap();
    assert_eq!(export["client"]["address"], "127.0.0.1");
    assert_eq!(export["client"]["user_agent"], payload);
    let api = w
        .kms
        .get(&format!("/v1/sessions/{id}"), &w.alice)
        .await
        .expect(StatusCode::OK);
    assert_eq!(api["client"], export["client"]);

    // Control characters are dropped and a long agent is cut; without one, the page says so.
    let long = format!("kms-pam/0.1.0\t{}", "x".repeat(1_000));
    let id = session_with_agent(&w.kms, &w.alice, long.as_bytes()).await;
    let api = w
        .kms
        .get(&format!("/v1/sessions/{id}"), &w.alice)
        .await
        .expect(StatusCode::OK);
    let kept = api["client"]["user_agent"].as_str().unwrap();
    assert_eq!(kept.chars().count(), 256, "{kept}");
    assert!(kept.starts_with("kms-pam/0.1.0x"), "{kept}");
    let plain = w.kms.session_id("/v1", &w.alice.clone(), "prod").await;
    let api = w
        .kms
        .get(&format!("/v1/sessions/{plain}"), &w.alice)
        .await
        .expect(StatusCode::OK);
    assert_eq!(api["client"]["address"], "127.0.0.1");
    assert!(api["client"].get("user_agent").is_none(), "{api}");
    let path = format!("/p/default/sessions/{plain}");
    let shown = page(&w.kms, Method::GET, &path, Some(&alice), &[], None).await;
    assert!(
        shown
            .text
            .contains("User agent</dt><dd class=\"mono\">—</dd>"),
        "{}",
        shown.text
    );
}

/// `n` kubectl invocations of one request each, chained for `session` and signed by `gw`.
fn many_commands(session: &str, n: u64) -> Vec<AuditEvent> {
    let chained = ChainingSink::new(MemoryAuditSink::new())
        .with_signer(std::sync::Arc::new(super::gateway_audit_key("gw")));
    for id in 1..=n {
        // Each in its own namespace, which its row shows.
        let path = format!("/api/v1/namespaces/ns{id}/pods");
        let started = RequestStarted {
            request_id: id,
            method: "GET".into(),
            path: path.clone(),
            query: None,
            info: RequestInfo::classify(&http::Method::GET, &path, None),
            kubectl_command: Some("kubectl get pods".into()),
            kubectl_session: Some(format!("k{id}")),
            user_agent: None,
        };
        chained
            .record(AuditEvent::now(
                SessionId::new(session),
                AuditEventKind::RequestStarted(Box::new(started)),
            ))
            .unwrap();
    }
    chained.inner().events()
}

#[tokio::test]
async fn a_long_command_log_comes_in_pages() {
    let w = world("long", "kubectl get pods").await;
    w.kms
        .post(
            "/v1/gateway/events",
            &w.gateway,
            json!({ "events": many_commands(&w.admin_session, 450) }),
        )
        .await
        .expect(StatusCode::OK);
    let admin = sign_in(&w.kms, &w.kms.admin.clone()).await;
    let base = format!("/p/default/sessions/{}", w.admin_session);
    let at = |page: &str| format!("{base}{page}");
    let rows = |text: &str| text.matches("<details>").count();
    let first = page(&w.kms, Method::GET, &base, Some(&admin), &[], None).await;
    assert_eq!(first.status, StatusCode::OK);
    assert!(first.text.contains("Commands (450)"), "the whole count");
    assert_eq!(rows(&first.text), 200);
    assert!(first.text.contains("Commands 1–200 of 450 · page 1 of 3"));
    assert!(first.text.contains("<td>ns1</td>") && !first.text.contains("<td>ns201</td>"));
    let last = page(&w.kms, Method::GET, &at("?page=3"), Some(&admin), &[], None).await;
    assert_eq!(rows(&last.text), 50);
    assert!(last.text.contains("<td>ns450</td>") && !last.text.contains("<td>ns400</td>"));
    assert!(last.text.contains("Commands 401–450 of 450 · page 3 of 3"));
    let beyond = page(
        &w.kms,
        Method::GET,
        &at("?page=99"),
        Some(&admin),
        &[],
        None,
    )
    .await;
    assert_eq!(beyond.status, StatusCode::OK);
    assert_eq!(rows(&beyond.text), 50, "past the end: the last page");
    let zero = page(&w.kms, Method::GET, &at("?page=0"), Some(&admin), &[], None).await;
    assert_eq!(rows(&zero.text), 200, "page 0: the first");
    let junk = page(&w.kms, Method::GET, &at("?page=x"), Some(&admin), &[], None).await;
    assert_eq!(junk.status, StatusCode::BAD_REQUEST);
    // The JSON export holds every command, whatever the page.
    let export = page(
        &w.kms,
        Method::GET,
        &at("?format=json&page=2"),
        Some(&admin),
        &[],
        None,
    )
    .await;
    let export: Value = serde_json::from_str(&export.text).unwrap();
    assert_eq!(export["commands"].as_array().unwrap().len(), 450);
    // The chain check of all 450 events, on its own page.
    let verdict = page(&w.kms, Method::GET, &at("/verify"), Some(&admin), &[], None).await;
    assert!(
        verdict.text.contains("450 events verified"),
        "{}",
        verdict.text
    );
}
