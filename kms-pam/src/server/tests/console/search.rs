//! The Sessions page's search finds what a person typed (`get pods`, `kubectl get pods`,
//! `describe deployment my-app`, an exec's `echo hi`) in the sessions' command lines, not in the
//! events' JSON; the session page names each command by its whole line and tells a watch still
//! open (running) from a failed request.

use http::{Method, StatusCode};
use serde_json::json;

use super::super::backdoor::Db;
use super::super::{session_body, Kms};
use super::{page, sign_in};
use crate::audit::{
    AuditEvent, AuditEventKind, AuditSink, ChainingSink, MemoryAuditSink, RequestFinished,
    RequestStarted, StreamDetails,
};
use crate::kube::{RequestInfo, StreamKind};
use crate::session::SessionId;

/// A request as kubectl sends it: `(id, method, path, query, Kubectl-Command, finished status)`.
type Request<'a> = (u64, &'a str, &'a str, Option<&'a str>, &'a str, Option<u16>);

/// The requests' events, chained and signed as the gateway `gw` records them for `session`;
/// an exec also opens its stream and names its command.
fn recorded(session: &str, requests: &[Request<'_>]) -> Vec<AuditEvent> {
    let chained = ChainingSink::new(MemoryAuditSink::new())
        .with_signer(std::sync::Arc::new(super::super::gateway_audit_key("gw")));
    let record = |kind| {
        chained
            .record(AuditEvent::now(SessionId::new(session), kind))
            .unwrap();
    };
    for &(request_id, method, path, query, command, status) in requests {
        let info = RequestInfo::classify(&method.parse().unwrap(), path, query);
        record(AuditEventKind::RequestStarted(Box::new(RequestStarted {
            request_id,
            method: method.into(),
            path: path.into(),
            query: query.map(Into::into),
            info,
            kubectl_command: Some(command.into()),
            kubectl_session: Some(format!("k-{session}")),
            user_agent: None,
            impersonation: None,
        })));
        if path.ends_with("/exec") {
            let stream = StreamKind::Exec;
            record(AuditEventKind::StreamOpened { request_id, stream });
            record(AuditEventKind::StreamDetails(Box::new(StreamDetails {
                request_id,
                stream,
                command: vec!["echo".into(), "hi".into()],
                container: None,
                tty: false,
                stdin: false,
                ports: Vec::new(),
                protocol: None,
                recorded: false,
            })));
        }
        if let Some(status) = status {
            record(AuditEventKind::RequestFinished(RequestFinished {
                request_id,
                status,
                bytes_in: 0,
                bytes_out: 10,
                duration_ms: 1,
                error: None,
            }));
        }
    }
    chained.inner().events()
}

const PODS: &str = "/api/v1/namespaces/default/pods";
const MY_APP: &str = "/apis/apps/v1/namespaces/default/deployments/my-app";
const EXEC: &str = "/api/v1/namespaces/default/pods/web/exec";
const SERVICES: &str = "/api/v1/namespaces/default/services";

/// The sessions of these tests, by reason, with what was run in each.
const SESSIONS: &[(&str, &[Request<'static>])] = &[
    ("alpha", &[(1, "GET", PODS, None, "kubectl get", Some(200))]),
    (
        "bravo",
        &[(1, "GET", MY_APP, None, "kubectl describe", Some(200))],
    ),
    (
        "charlie",
        &[(
            1,
            "POST",
            EXEC,
            Some("command=echo&command=hi&stdout=true"),
            "kubectl exec",
            Some(101),
        )],
    ),
    (
        "delta",
        &[
            (1, "GET", SERVICES, None, "kubectl get", Some(200)),
            (2, "GET", SERVICES, Some("watch=true"), "kubectl get", None),
        ],
    ),
];

/// KMS with gateway `gw`, resource `prod` and the admin's sessions of [`SESSIONS`], their
/// events delivered; the session ids by reason.
async fn sessions() -> (Kms, Vec<(&'static str, String)>) {
    let kms = Kms::start().await;
    let gateway = kms.gateway("gw").await;
    kms.resource("prod", "gw").await;
    let mut ids = Vec::new();
    for (reason, requests) in SESSIONS {
        let mut body = session_body("prod", 600);
        body["reason"] = json!(reason);
        let created = kms
            .post("/v1/sessions", &kms.admin.clone(), body)
            .await
            .expect(StatusCode::CREATED);
        let id = created["session"]["id"].as_str().unwrap().to_owned();
        kms.post(
            "/v1/gateway/events",
            &gateway,
            json!({ "events": recorded(&id, requests) }),
        )
        .await
        .expect(StatusCode::OK);
        ids.push((*reason, id));
    }
    (kms, ids)
}

/// The reasons of the sessions the Sessions page finds for `q`.
async fn found(kms: &Kms, cookie: &str, q: &str) -> Vec<&'static str> {
    let path = format!("/p/default/sessions?q={}", q.replace(' ', "+"));
    let answer = page(kms, Method::GET, &path, Some(cookie), &[], None).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    SESSIONS
        .iter()
        .map(|(reason, _)| *reason)
        .filter(|reason| answer.text.contains(&format!(">{reason}<")))
        .collect()
}

#[tokio::test]
async fn the_search_finds_what_a_person_typed_and_not_json_keys() {
    let (kms, _) = sessions().await;
    let cookie = sign_in(&kms, &kms.admin.clone()).await;
    assert_eq!(found(&kms, &cookie, "delta").await, ["delta"], "reasons");
    assert_eq!(found(&kms, &cookie, "get pods").await, ["alpha"]);
    assert_eq!(found(&kms, &cookie, "kubectl get pods").await, ["alpha"]);
    assert_eq!(found(&kms, &cookie, "GET Pods").await, ["alpha"]);
    assert_eq!(
        found(&kms, &cookie, "describe deployment my-app").await,
        ["bravo"]
    );
    assert_eq!(found(&kms, &cookie, "echo hi").await, ["charlie"]);
    assert_eq!(found(&kms, &cookie, "get services").await, ["delta"]);
    // The words of one command, not of the session's events: `exec` and `pods` are in charlie's
    // line, `get` is not.
    assert_eq!(found(&kms, &cookie, "exec get").await, Vec::<&str>::new());
    for key in ["method", "request_id", "kubectl_session"] {
        assert_eq!(found(&kms, &cookie, key).await, Vec::<&str>::new(), "{key}");
    }
}

#[tokio::test]
async fn sessions_stored_before_the_command_lines_are_found_after_a_restart() {
    let (kms, _) = sessions().await;
    let db = Db::sqlite(&kms.data_dir());
    db.exec("DELETE FROM session_commands", &[]).await;
    let cookie = sign_in(&kms, &kms.admin.clone()).await;
    assert_eq!(found(&kms, &cookie, "echo hi").await, Vec::<&str>::new());
    let kms = Kms::start_in(kms.stop().await).await;
    let cookie = sign_in(&kms, &kms.admin.clone()).await;
    assert_eq!(found(&kms, &cookie, "echo hi").await, ["charlie"]);
    assert_eq!(found(&kms, &cookie, "get pods").await, ["alpha"]);
}

#[tokio::test]
async fn the_session_page_shows_command_lines_and_a_running_watch() {
    let (kms, ids) = sessions().await;
    let cookie = sign_in(&kms, &kms.admin.clone()).await;
    let show = |reason: &str| {
        let id = &ids.iter().find(|(r, _)| *r == reason).unwrap().1;
        let path = format!("/p/default/sessions/{id}");
        let (kms, cookie) = (&kms, cookie.clone());
        async move {
            page(kms, Method::GET, &path, Some(&cookie), &[], None)
                .await
                .text
        }
    };
    let bravo = show("bravo").await;
    assert!(
        bravo.contains("kubectl get deployments/my-app -n default</code>"),
        "{bravo}"
    );
    assert!(
        bravo.contains("client: <code>kubectl describe</code>"),
        "{bravo}"
    );
    let charlie = show("charlie").await;
    assert!(
        charlie.contains("kubectl exec pods/web -n default -- echo hi</code>"),
        "{charlie}"
    );
    // A watch still open in an active session is running, not failed.
    let delta = show("delta").await;
    assert!(delta.contains(">running</span>"), "{delta}");
    assert!(!delta.contains("failed"), "{delta}");
}
