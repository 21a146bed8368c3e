use std::time::SystemTime;

use super::*;
use crate::audit::{StreamDetails, StreamSummary};
use crate::kube::{StreamKind, Verb};

fn request(verb: Verb, resource: &str, name: Option<&str>, status: Option<u16>) -> RequestSummary {
    RequestSummary {
        time: SystemTime::UNIX_EPOCH,
        request_id: 1,
        method: "GET".into(),
        path: "/api/v1/namespaces/default/pods".into(),
        query: None,
        status,
        verb,
        resource: Some(resource.into()),
        namespace: Some("default".into()),
        name: name.map(str::to_owned),
        discovery: false,
        bytes_in: None,
        bytes_out: None,
        duration_ms: None,
        error: None,
    }
}

fn command(derived: &str, claimed: &str, requests: Vec<RequestSummary>) -> Command {
    Command {
        command: claimed.into(),
        started_at: SystemTime::UNIX_EPOCH,
        kubectl_session: None,
        requests,
        streams: Vec::new(),
        derived: derived.into(),
        claimed: Some(claimed.into()),
        mismatch: None,
        subject_request: None,
    }
}

#[test]
fn a_command_reads_as_the_line_a_person_typed() {
    let mut discovery = request(Verb::Get, "pods", None, Some(200));
    discovery.discovery = true;
    discovery.resource = None;
    let get = command(
        "kubectl get",
        "kubectl get",
        vec![discovery, request(Verb::List, "pods", None, Some(200))],
    );
    assert_eq!(get.line().to_string(), "kubectl get pods -n default");
    assert_eq!(get.line().client, None);
}

#[test]
fn another_subcommand_the_client_named_follows_the_line() {
    let describe = command(
        "kubectl get",
        "kubectl describe",
        vec![request(Verb::Get, "deployments", Some("my-app"), Some(200))],
    );
    let line = describe.line();
    assert_eq!(line.text, "kubectl get deployments/my-app -n default");
    assert_eq!(line.client.as_deref(), Some("kubectl describe"));
    assert_eq!(
        line.to_string(),
        "kubectl get deployments/my-app -n default  (client: kubectl describe)"
    );
    // A claim that only says more (`kubectl create configmap`) is not repeated.
    let create = command("kubectl create", "kubectl create configmap", Vec::new());
    assert_eq!(create.line().to_string(), "kubectl create");
    // A KMS that did not derive sends the claim alone.
    let older = command("", "kubectl get", Vec::new());
    assert_eq!(older.line().to_string(), "kubectl get");
}

#[test]
fn an_exec_shows_its_command_line() {
    let mut exec = command(
        "kubectl exec",
        "kubectl exec",
        vec![request(Verb::Exec, "pods", Some("web"), Some(101))],
    );
    exec.streams.push(StreamSummary {
        request_id: 1,
        stream: StreamKind::Exec,
        opened_at: SystemTime::UNIX_EPOCH,
        bytes_in: None,
        bytes_out: None,
        duration_ms: None,
        reason: None,
        details: Some(StreamDetails {
            request_id: 1,
            stream: StreamKind::Exec,
            command: vec!["echo".into(), "hi".into()],
            container: None,
            tty: false,
            stdin: false,
            ports: Vec::new(),
            protocol: None,
            recorded: false,
        }),
        recording: None,
        recording_ended: None,
    });
    assert_eq!(
        exec.line().to_string(),
        "kubectl exec pods/web -n default -- echo hi"
    );
}

#[test]
fn a_request_without_its_end_runs_while_the_session_is_open() {
    let watch = command(
        "kubectl get",
        "kubectl get",
        vec![
            request(Verb::List, "pods", None, Some(200)),
            request(Verb::Watch, "pods", None, None),
            request(Verb::Get, "pods", Some("gone"), Some(404)),
        ],
    );
    assert_eq!(watch.requests[1].state(true), RequestState::Running);
    assert_eq!(watch.requests[1].state(false), RequestState::Failed);
    assert_eq!(
        watch.outcome(true),
        Outcome {
            succeeded: 1,
            running: 1,
            failed: 1
        }
    );
    assert_eq!(
        watch.outcome(false),
        Outcome {
            succeeded: 1,
            running: 0,
            failed: 2
        }
    );
}
