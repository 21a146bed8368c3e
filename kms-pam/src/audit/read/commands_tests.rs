use std::time::Duration;

use super::*;
use crate::kube::RequestInfo;

const KUBECTL_GET: Option<(&str, &str)> = Some(("kubectl get", "k-get"));

fn at(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000) + Duration::from_millis(ms)
}

fn event(ms: u64, kind: AuditEventKind) -> AuditEvent {
    let mut event = AuditEvent::now(SessionId::new("s"), kind);
    event.time = at(ms);
    event
}

/// A request at `ms`, finished 5 ms later with `status` (unless `None`), as the gateway records
/// it; `kubectl` is `(Kubectl-Command, Kubectl-Session)`.
fn request(
    ms: u64,
    id: u64,
    target: &str,
    kubectl: Option<(&str, &str)>,
    status: Option<u16>,
) -> Vec<AuditEvent> {
    let (method, uri) = target.split_once(' ').unwrap();
    let (path, query) = match uri.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (uri, None),
    };
    let method: http::Method = method.parse().unwrap();
    let started = RequestStarted {
        request_id: id,
        method: method.to_string(),
        path: path.to_owned(),
        query: query.map(str::to_owned),
        info: RequestInfo::classify(&method, path, query),
        kubectl_command: kubectl.map(|(c, _)| c.to_owned()),
        kubectl_session: kubectl.map(|(_, s)| s.to_owned()),
        user_agent: None,
        impersonation: None,
    };
    let mut events = vec![event(ms, AuditEventKind::RequestStarted(Box::new(started)))];
    if let Some(status) = status {
        let finished = RequestFinished {
            request_id: id,
            status,
            bytes_in: 0,
            bytes_out: 100,
            duration_ms: 5,
            error: None,
        };
        events.push(event(ms + 5, AuditEventKind::RequestFinished(finished)));
    }
    events
}

fn stream(ms: u64, id: u64, kind: StreamKind, reason: Option<&str>) -> Vec<AuditEvent> {
    let closed = StreamClosed {
        request_id: id,
        stream: kind,
        bytes_in: 3,
        bytes_out: 40,
        duration_ms: 900,
        reason: reason.map(str::to_owned),
    };
    vec![
        event(
            ms,
            AuditEventKind::StreamOpened {
                request_id: id,
                stream: kind,
            },
        ),
        event(ms + 900, AuditEventKind::StreamClosed(closed)),
    ]
}

fn exec_details(ms: u64, id: u64) -> AuditEvent {
    let details = StreamDetails {
        request_id: id,
        stream: StreamKind::Exec,
        command: vec!["sh".into()],
        container: None,
        tty: true,
        stdin: true,
        ports: Vec::new(),
        protocol: Some("v5.channel.k8s.io".into()),
        recorded: true,
    };
    event(ms, AuditEventKind::StreamDetails(Box::new(details)))
}

/// Each command as `name: [METHOD path verb status, ...]`.
fn outline(commands: &[Command]) -> Vec<String> {
    commands
        .iter()
        .map(|c| {
            let requests: Vec<String> = c
                .requests
                .iter()
                .map(|r| {
                    let status = r.status.map_or("-".into(), |s| s.to_string());
                    format!("{} {} {} {status}", r.method, r.path, r.verb)
                })
                .collect();
            format!("{}: [{}]", c.command, requests.join(", "))
        })
        .collect()
}

fn scenarios() -> Vec<(&'static str, Vec<AuditEvent>, Vec<&'static str>)> {
    vec![
        (
            "kubectl get pods, with discovery",
            [
                request(0, 1, "GET /api?timeout=32s", KUBECTL_GET, Some(200)),
                request(10, 2, "GET /apis?timeout=32s", KUBECTL_GET, Some(200)),
                request(20, 3, "GET /api/v1?timeout=32s", KUBECTL_GET, Some(200)),
                request(30, 4, "GET /api/v1/namespaces/default/pods?limit=500", KUBECTL_GET, Some(200)),
            ]
            .concat(),
            vec!["kubectl get: [GET /api get 200, GET /apis get 200, GET /api/v1 get 200, GET /api/v1/namespaces/default/pods list 200]"],
        ),
        (
            "kubectl describe pod",
            [
                request(0, 1, "GET /api/v1/namespaces/default/pods/web-1", Some(("kubectl describe", "k-d")), Some(200)),
                request(10, 2, "GET /api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dweb-1", Some(("kubectl describe", "k-d")), Some(200)),
            ]
            .concat(),
            vec!["kubectl describe: [GET /api/v1/namespaces/default/pods/web-1 get 200, GET /api/v1/namespaces/default/events list 200]"],
        ),
        (
            "kubectl apply creating a deployment",
            [
                request(0, 1, "GET /openapi/v3?timeout=32s", Some(("kubectl apply", "k-a")), Some(200)),
                request(10, 2, "GET /apis/apps/v1/namespaces/default/deployments/web", Some(("kubectl apply", "k-a")), Some(404)),
                request(20, 3, "POST /apis/apps/v1/namespaces/default/deployments?fieldManager=kubectl-client-side-apply", Some(("kubectl apply", "k-a")), Some(201)),
            ]
            .concat(),
            vec!["kubectl apply: [GET /openapi/v3 get 200, GET /apis/apps/v1/namespaces/default/deployments/web get 404, POST /apis/apps/v1/namespaces/default/deployments create 201]"],
        ),
        (
            "kubectl delete, then kubectl get again (two processes)",
            [
                request(0, 1, "DELETE /api/v1/namespaces/default/pods/web-1", Some(("kubectl delete", "k-del")), Some(200)),
                request(50, 2, "GET /api/v1/namespaces/default/pods?limit=500", KUBECTL_GET, Some(200)),
            ]
            .concat(),
            vec![
                "kubectl delete: [DELETE /api/v1/namespaces/default/pods/web-1 delete 200]",
                "kubectl get: [GET /api/v1/namespaces/default/pods list 200]",
            ],
        ),
        (
            "kubectl exec -it",
            [
                request(0, 1, "GET /api/v1/namespaces/default/pods/web-1?timeout=32s", Some(("kubectl exec", "k-x")), Some(200)),
                request(10, 2, "GET /api/v1/namespaces/default/pods/web-1/exec?command=sh&stdin=true&stdout=true&tty=true", Some(("kubectl exec", "k-x")), Some(101)),
                vec![exec_details(12, 2)],
                stream(12, 2, StreamKind::Exec, None),
            ]
            .concat(),
            vec!["kubectl exec: [GET /api/v1/namespaces/default/pods/web-1 get 200, GET /api/v1/namespaces/default/pods/web-1/exec exec 101]"],
        ),
        (
            "kubectl logs -f cut by the session's end",
            [
                request(0, 1, "GET /api/v1/namespaces/default/pods/web-1/log?follow=true", Some(("kubectl logs", "k-l")), Some(200)),
                stream(3, 1, StreamKind::LogFollow, Some("session expired")),
            ]
            .concat(),
            vec!["kubectl logs: [GET /api/v1/namespaces/default/pods/web-1/log log 200]"],
        ),
        (
            "another client: one command per request, named by its verb",
            [
                request(0, 1, "GET /api/v1/pods", None, Some(200)),
                request(10, 2, "GET /api/v1/namespaces/kube-system/pods/dns", None, Some(403)),
                request(20, 3, "GET /healthz", None, None),
            ]
            .concat(),
            vec![
                "list: [GET /api/v1/pods list 200]",
                "get: [GET /api/v1/namespaces/kube-system/pods/dns get 403]",
                "get: [GET /healthz get -]",
            ],
        ),
        (
            "two kubectl processes and curl interleaved, events out of order",
            {
                let mut events = [
                    request(0, 1, "GET /api/v1/namespaces/default/pods?limit=500", KUBECTL_GET, Some(200)),
                    request(5, 2, "GET /api/v1/namespaces/default/pods/web-1/log", Some(("kubectl logs", "k-l")), Some(200)),
                    request(7, 3, "GET /version", None, Some(200)),
                    request(9, 4, "GET /api/v1/namespaces/default/services?limit=500", KUBECTL_GET, Some(200)),
                ]
                .concat();
                events.reverse();
                events
            },
            vec![
                "kubectl get: [GET /api/v1/namespaces/default/pods list 200, GET /api/v1/namespaces/default/services list 200]",
                "kubectl logs: [GET /api/v1/namespaces/default/pods/web-1/log log 200]",
                "get: [GET /version get 200]",
            ],
        ),
    ]
}

#[test]
fn requests_are_grouped_into_the_commands_people_ran() {
    for (name, events, expected) in scenarios() {
        let commands = group_commands(&events);
        assert_eq!(outline(&commands), expected, "{name}");
        let starts: Vec<_> = commands.iter().map(|c| c.started_at).collect();
        assert!(starts.windows(2).all(|w| w[0] <= w[1]), "{name}: ordered");
    }
}

#[test]
fn commands_carry_their_streams_with_details() {
    let (_, events, _) = scenarios().swap_remove(4);
    let commands = group_commands(&events);
    let exec = &commands[0];
    assert_eq!(exec.kubectl_session.as_deref(), Some("k-x"));
    let [stream] = &exec.streams[..] else {
        panic!("one stream: {:?}", exec.streams)
    };
    assert_eq!(stream.stream, StreamKind::Exec);
    assert_eq!(stream.details.as_ref().unwrap().command, ["sh"]);
    assert_eq!(stream.recording, Some(1));
    assert_eq!((stream.bytes_in, stream.bytes_out), (Some(3), Some(40)));
    assert!(!exec.requests[0].discovery);

    let (_, events, _) = scenarios().swap_remove(5);
    let logs = &group_commands(&events)[0];
    assert_eq!(logs.streams[0].reason.as_deref(), Some("session expired"));
    assert_eq!(logs.streams[0].stream, StreamKind::LogFollow);
}

#[test]
fn json_has_the_spec_shape_and_reads_as_the_kms_api_type() {
    let (_, events, _) = scenarios().swap_remove(0);
    let commands = group_commands(&events);
    let json = serde_json::to_value(&commands).unwrap();
    let command = &json[0];
    assert_eq!(command["command"], "kubectl get");
    assert!(command["started_at"].as_str().unwrap().ends_with('Z'));
    let request = &command["requests"][3];
    for key in [
        "time",
        "method",
        "path",
        "status",
        "verb",
        "resource",
        "namespace",
        "name",
    ] {
        assert!(request.get(key).is_some(), "requests[].{key} is missing");
    }
    assert_eq!(request["verb"], "list");
    assert_eq!(request["resource"], "pods");
    assert_eq!(request["namespace"], "default");
    assert_eq!(request["name"], serde_json::Value::Null);
    assert_eq!(command["requests"][0]["discovery"], true);

    // The server sends these types and the client reads the same ones back, field for field.
    let back: Vec<crate::kms::api::Command> = serde_json::from_value(json).unwrap();
    assert_eq!(back, commands);
    assert_eq!(back[0].requests[3].status, Some(200));
    assert_eq!(back[0].requests[3].verb, crate::kube::Verb::List);
    assert!(back[0].requests[0].discovery);
}

/// A request from kubectl's own `User-Agent`, with or without its `Kubectl-*` headers.
fn from_kubectl(mut events: Vec<AuditEvent>) -> Vec<AuditEvent> {
    for event in &mut events {
        if let AuditEventKind::RequestStarted(started) = &mut event.kind {
            started.user_agent = Some("kubectl/v1.32.4 (linux/amd64) kubernetes/4cb5f07".into());
        }
    }
    events
}

/// kubectl 1.32's first request, as its version dispatcher sends it: no `Kubectl-*` headers.
fn dispatcher_version(ms: u64, id: u64) -> Vec<AuditEvent> {
    let mut events = request(ms, id, "GET /version?timeout=5s", None, Some(200));
    if let AuditEventKind::RequestStarted(started) = &mut events[0].kind {
        started.user_agent = Some("kubectl-dispatcher/v1.0 (linux/amd64)".into());
    }
    events
}

#[test]
fn kubectls_header_less_first_request_is_folded_into_its_command() {
    let pods = "GET /api/v1/namespaces/default/pods?limit=500";
    let events = [
        dispatcher_version(0, 1),
        from_kubectl(request(
            10,
            2,
            "GET /api?timeout=32s",
            KUBECTL_GET,
            Some(200),
        )),
        from_kubectl(request(20, 3, pods, KUBECTL_GET, Some(200))),
    ]
    .concat();
    let commands = group_commands(&events);
    assert_eq!(
        outline(&commands),
        ["kubectl get: [GET /version get 200, GET /api get 200, GET /api/v1/namespaces/default/pods list 200]"]
    );
    assert_eq!(commands[0].started_at, at(0));

    // Another client's header-less request stays a command of its own.
    let mut curl = request(0, 1, "GET /version", None, Some(200));
    curl.extend(request(20, 2, "GET /api/v1/pods", KUBECTL_GET, Some(200)));
    assert_eq!(group_commands(&curl).len(), 2);

    // With no kubectl command after it, it joins the one before; with none at all, it is shown
    // on its own rather than hidden.
    let late = [
        request(0, 1, "GET /api/v1/pods", KUBECTL_GET, Some(200)),
        dispatcher_version(50, 2),
    ]
    .concat();
    assert_eq!(
        outline(&group_commands(&late)),
        ["kubectl get: [GET /api/v1/pods list 200, GET /version get 200]"]
    );
    assert_eq!(
        outline(&group_commands(&dispatcher_version(0, 1))),
        ["get: [GET /version get 200]"]
    );
}

#[test]
fn the_name_a_reviewer_reads_is_derived_and_a_false_claim_is_flagged() {
    let events = [
        request(
            0,
            1,
            "GET /api/v1/namespaces/default/configmaps/app",
            KUBECTL_GET,
            Some(200),
        ),
        request(
            5,
            2,
            "DELETE /api/v1/namespaces/default/configmaps/app",
            KUBECTL_GET,
            Some(200),
        ),
    ]
    .concat();
    let command = &group_commands(&events)[0];
    assert_eq!(
        command.command, "kubectl get",
        "the claim, as docs/cli.md names commands"
    );
    assert_eq!(command.claimed.as_deref(), Some("kubectl get"));
    assert_eq!(command.derived, "kubectl delete");
    assert!(command
        .mismatch
        .as_deref()
        .unwrap()
        .contains("deleted configmaps/app"));
    let json = serde_json::to_value(command).unwrap();
    assert_eq!(json["derived"], "kubectl delete");
    assert!(json["mismatch"].is_string());
    let honest = &group_commands(&scenarios().swap_remove(0).1)[0];
    assert_eq!(honest.derived, "kubectl get");
    assert_eq!(honest.mismatch, None);
    assert!(serde_json::to_value(honest)
        .unwrap()
        .get("mismatch")
        .is_none());
}

#[test]
fn a_command_takes_its_name_from_the_first_request_that_has_one() {
    let mut events = request(0, 1, "GET /api", Some(("", "k-1")), Some(200));
    events.extend(request(
        5,
        2,
        "GET /api/v1/nodes",
        Some(("kubectl top node", "k-1")),
        Some(200),
    ));
    let commands = group_commands(&events);
    assert_eq!(outline(&commands).len(), 1);
    assert_eq!(commands[0].command, "kubectl top node");
    assert!(group_commands(&[]).is_empty());
}
