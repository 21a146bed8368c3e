//! The session page and the Sessions page's counts: commands grouped as the session groups
//! them, a false `Kubectl-Command` claim flagged, kubectl's header-less first request folded,
//! where the session was requested from, and a long command log in pages.

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};

use super::super::{session_body, Kms};
use crate::audit::{
    AuditEvent, AuditEventKind, AuditSink, ChainingSink, MemoryAuditSink, RequestStarted,
};
use crate::kube::RequestInfo;
use crate::session::SessionId;

use super::*;

/// Three requests: two of one kubectl invocation (`Kubectl-Session` k1) and one from a client
/// without the header, chained for `session`.
pub(super) fn three_requests(session: &str) -> Vec<AuditEvent> {
    let chained = ChainingSink::new(MemoryAuditSink::new())
        .with_signer(std::sync::Arc::new(super::super::gateway_audit_key("gw")));
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
            impersonation: None,
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
        // A session id is its own path segment (letters, digits and hyphens).
        let row = &list.text[list.text.find(&format!("/sessions/{id}\"")).unwrap()..];
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
    .with_signer(std::sync::Arc::new(super::super::gateway_audit_key("gw")));
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
        impersonation: None,
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
        shown
            .text
            .contains(">kubectl delete configmaps/app -n default</code>"),
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
        .with_signer(std::sync::Arc::new(super::super::gateway_audit_key("gw")));
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
            impersonation: None,
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
    let row = &list.text[list
        .text
        .find(&format!("/sessions/{}\"", w.admin_session))
        .unwrap()..];
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
        .with_signer(std::sync::Arc::new(super::super::gateway_audit_key("gw")));
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
            impersonation: None,
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
