//! How `pam sessions show` prints a session for people: its metadata, then each kubectl command
//! as one line (what it did, its object, its statuses) with its requests under it.

use std::fmt::Write as _;

use kms_pam::audit::RequestState;
use kms_pam::kms::api::{Command, RequestSummary, SessionDetail};
use kms_pam::session::SessionStatus;

use crate::output::{self, inert};

pub(super) fn describe(detail: &SessionDetail) -> String {
    let s = &detail.session.session;
    let status = match detail.session.end_cause {
        Some(cause) => format!("{} ({cause})", s.status),
        None => s.status.to_string(),
    };
    let mut out = String::new();
    let _ = write!(
        out,
        "Session:  {}\nUser:     {}\nAccount:  {}/{}\nGateway:  {}\nStatus:   {status}\n\
         Created:  {}\nExpires:  {}\nEnded:    {}\nReason:   {}\n",
        s.id,
        inert(&s.user),
        inert(&s.resource),
        inert(&s.account),
        inert(&s.gateway),
        output::time(s.created_at),
        output::time(s.expires_at),
        output::time_or_dash(s.ended_at),
        output::or_dash(s.reason.as_deref()),
    );
    if let Some(person) = &detail.session.identity {
        let _ = writeln!(out, "Person:   {}", inert(&person.to_string()));
    }
    if detail.commands.is_empty() {
        out.push_str("\nNo commands recorded.\n");
        return out;
    }
    out.push_str("\nCommands:\n");
    let open = s.status == SessionStatus::Active;
    for command in &detail.commands {
        let _ = writeln!(out, "\n  {}", command_line(command, open));
        let discovery = command.requests.iter().filter(|r| r.discovery).count();
        for request in command.requests.iter().filter(|r| !r.discovery) {
            let _ = writeln!(out, "    {}", describe_request(request, open));
        }
        if discovery > 0 {
            let _ = writeln!(out, "    (+{discovery} discovery requests)");
        }
    }
    out
}

/// `14:02:11  kubectl get pods -n default  200`: the command's line (`Command::line`, the line
/// the console shows and searches: what its requests did, not what the client claimed, with the
/// object of the request it is named after, its namespace and an exec's command line), its
/// recordings, then the statuses its requests got (`running` for one still open while the
/// session is: a watch, `logs -f`, an exec). When the client named another subcommand, its claim
/// follows (`(client: kubectl describe)`); when the claim contradicts the requests, the line
/// says so (`MISMATCH: …`).
fn command_line(command: &Command, open: bool) -> String {
    let time = output::time(command.started_at);
    let clock = time.get(11..19).unwrap_or(&time);
    let line = command.line();
    let mut text = format!("{clock}  {}", inert(&line.text));
    for n in command.streams.iter().filter_map(|s| s.recording) {
        let _ = write!(text, "  [recording {n}]");
    }
    let mut statuses: Vec<String> = Vec::new();
    for request in command.requests.iter().filter(|r| !r.discovery) {
        let status = request_status(request, open);
        if !statuses.contains(&status) {
            statuses.push(status);
        }
    }
    let _ = write!(text, "  {}", statuses.join(" "));
    if let Some(claim) = &line.client {
        let _ = write!(text, "  (client: {})", inert(claim));
    }
    if let Some(why) = &command.mismatch {
        let _ = write!(text, "\n    MISMATCH: {}", inert(why));
    }
    text
}

/// A request's status, `running` while it is open in an open session, `-` when its end was never
/// recorded.
fn request_status(request: &RequestSummary, open: bool) -> String {
    match (request.status, request.state(open)) {
        (Some(status), _) => status.to_string(),
        (None, RequestState::Running) => "running".to_owned(),
        (None, _) => "-".to_owned(),
    }
}

/// `200  list pods in default  GET /api/v1/namespaces/default/pods`.
fn describe_request(request: &RequestSummary, open: bool) -> String {
    let status = request_status(request, open);
    // A verb unknown to this version arrives as text (`Verb::Other`): anyone's text.
    let mut what = inert(&request.verb.to_string()).into_owned();
    for part in [&request.resource, &request.name].into_iter().flatten() {
        what.push(' ');
        what.push_str(&inert(part));
    }
    if let Some(namespace) = &request.namespace {
        what.push_str(&format!(" in {}", inert(namespace)));
    }
    format!(
        "{status:<3}  {what}  {} {}",
        inert(&request.method),
        inert(&request.path)
    )
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use kms_pam::audit::{StreamDetails, StreamSummary};
    use kms_pam::kube::{StreamKind, Verb};

    use super::*;

    fn request(name: Option<&str>, status: u16) -> RequestSummary {
        RequestSummary {
            time: SystemTime::UNIX_EPOCH,
            request_id: 1,
            method: "GET".into(),
            path: "/api/v1/namespaces/default/pods".into(),
            query: None,
            status: Some(status),
            verb: Verb::Get,
            resource: Some("pods".into()),
            namespace: Some("default".into()),
            name: name.map(str::to_owned),
            discovery: false,
            bytes_in: None,
            bytes_out: None,
            duration_ms: None,
            error: None,
        }
    }

    #[test]
    fn requests_read_as_what_was_done() {
        let mut request = request(Some("web"), 200);
        request.path = "/api/v1/namespaces/default/pods/web".into();
        assert_eq!(
            describe_request(&request, false),
            "200  get pods web in default  GET /api/v1/namespaces/default/pods/web"
        );
    }

    #[test]
    fn commands_read_as_a_command_line() {
        let mut discovery = request(None, 200);
        discovery.discovery = true;
        discovery.resource = None;
        let mut command = Command {
            command: "kubectl get".into(),
            started_at: SystemTime::UNIX_EPOCH + Duration::from_secs(50_531),
            kubectl_session: None,
            requests: vec![discovery, request(None, 200)],
            streams: Vec::new(),
            derived: "kubectl get".into(),
            claimed: Some("kubectl get".into()),
            mismatch: None,
            subject_request: None,
        };
        assert_eq!(
            command_line(&command, false),
            "14:02:11  kubectl get pods -n default  200"
        );
        command.command = "kubectl exec".into();
        command.derived = "kubectl exec".into();
        command.claimed = Some("kubectl exec".into());
        command.requests = vec![request(Some("web"), 200), request(Some("web"), 101)];
        command.streams = vec![StreamSummary {
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
                recorded: true,
            }),
            recording: Some(1),
            recording_ended: None,
        }];
        assert_eq!(
            command_line(&command, false),
            "14:02:11  kubectl exec pods/web -n default -- echo hi  [recording 1]  200 101"
        );
    }

    #[test]
    fn a_watch_still_open_is_running_not_failed() {
        let mut watch = request(None, 200);
        watch.verb = Verb::Watch;
        watch.status = None;
        let command = Command {
            command: "kubectl get".into(),
            started_at: SystemTime::UNIX_EPOCH + Duration::from_secs(50_531),
            kubectl_session: None,
            requests: vec![request(None, 200), watch.clone()],
            streams: Vec::new(),
            derived: "kubectl get".into(),
            claimed: Some("kubectl get".into()),
            mismatch: None,
            subject_request: None,
        };
        assert_eq!(
            command_line(&command, true),
            "14:02:11  kubectl get pods -n default  200 running"
        );
        assert!(describe_request(&watch, true).starts_with("running  watch pods in default"));
        // Once the session is over, a request without its end recorded never finished.
        assert_eq!(
            command_line(&command, false),
            "14:02:11  kubectl get pods -n default  200 -"
        );
    }

    #[test]
    fn the_line_shows_what_was_done_and_flags_a_false_claim() {
        let mut delete = request(Some("app"), 200);
        delete.method = "DELETE".into();
        delete.verb = Verb::Delete;
        delete.resource = Some("configmaps".into());
        let command = Command {
            command: "kubectl get".into(),
            started_at: SystemTime::UNIX_EPOCH + Duration::from_secs(50_531),
            kubectl_session: None,
            requests: vec![delete],
            streams: Vec::new(),
            derived: "kubectl delete".into(),
            claimed: Some("kubectl get".into()),
            mismatch: Some("the client said \"kubectl get\", but the command deleted".into()),
            subject_request: None,
        };
        assert_eq!(
            command_line(&command, false),
            "14:02:11  kubectl delete configmaps/app -n default  200  (client: kubectl get)\n    \
             MISMATCH: the client said \"kubectl get\", but the command deleted"
        );
        let describe = Command {
            derived: "kubectl get".into(),
            claimed: Some("kubectl describe".into()),
            mismatch: None,
            ..command.clone()
        };
        assert!(command_line(&describe, false).ends_with("(client: kubectl describe)"));
        let create = Command {
            derived: "kubectl create".into(),
            claimed: Some("kubectl create configmap".into()),
            mismatch: None,
            ..command
        };
        assert!(!command_line(&create, false).contains("client:"));
    }

    #[test]
    fn the_line_names_the_object_of_the_request_the_command_is_named_after() {
        let mut read = request(Some("web"), 200);
        read.request_id = 1;
        let mut delete = request(Some("db"), 200);
        delete.request_id = 2;
        delete.method = "DELETE".into();
        delete.verb = Verb::Delete;
        delete.resource = Some("secrets".into());
        let command = Command {
            command: "kubectl apply".into(),
            started_at: SystemTime::UNIX_EPOCH + Duration::from_secs(50_531),
            kubectl_session: None,
            requests: vec![read, delete],
            streams: Vec::new(),
            derived: "kubectl delete".into(),
            claimed: Some("kubectl apply".into()),
            mismatch: None,
            subject_request: Some(2),
        };
        assert!(
            command_line(&command, false)
                .starts_with("14:02:11  kubectl delete secrets/db -n default"),
            "{}",
            command_line(&command, false)
        );
        // A record without the subject (an older KMS) falls back to the first resource request.
        let older = Command {
            subject_request: None,
            ..command
        };
        assert!(command_line(&older, false).starts_with("14:02:11  kubectl delete pods/web"));
    }
}
