//! A session's events grouped into the commands a person ran (docs/cli.md `pam sessions show`).
//!
//! kubectl sends `Kubectl-Session` (one id per kubectl process) and `Kubectl-Command`
//! (`kubectl get`) on every request; requests sharing a `Kubectl-Session` are one command, named
//! by its `Kubectl-Command`. A request without the header (another client) is a command of its
//! own, named by its verb (`list`, `get`, …). Commands are ordered by their first request.
//! kubectl's first request goes out without its headers (`GET /version?timeout=5s`, from its
//! version dispatcher, `User-Agent: kubectl-dispatcher/…`); it is folded into the kubectl
//! command that follows it (or, when none follows, the one before it), so it is never a command
//! of its own — as the console's command count (an index over each event's invocation, store
//! migration 0302) counts it.
//!
//! `Kubectl-Command` is only what the client claims. Each command also says what its requests
//! did (`derived`: `kubectl delete` when one deleted), and `mismatch` says why when the claim
//! does not fit them (a "`kubectl get`" that deleted a config map).
//!
//! These types are also the KMS API's session history ([`SessionDetail`](crate::kms::api::SessionDetail)):
//! the server serializes them and the client reads them back, so the CLI works with typed fields.

use std::collections::HashMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::audit::write::{
    AuditEvent, AuditEventKind, RecordingEnded, RequestFinished, RequestStarted, StreamClosed,
    StreamDetails,
};
use crate::kube::{StreamKind, Verb};
use crate::session::SessionId;

/// One command: a kubectl invocation, or one request of another client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Command {
    /// `Kubectl-Command` (`kubectl get`), or the verb of a request from another client.
    pub command: String,
    /// When its first request arrived.
    #[serde(with = "crate::time::rfc3339_millis")]
    pub started_at: SystemTime,
    /// The `Kubectl-Session` header shared by its requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubectl_session: Option<String>,
    /// Its requests, in arrival order.
    pub requests: Vec<RequestSummary>,
    /// The long-lived streams its requests opened (watch, logs -f, exec, port-forward, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub streams: Vec<StreamSummary>,
    /// What its requests did, whatever the client claimed: `kubectl <verb>` in kubectl's words
    /// from the strongest of their verbs (`kubectl delete` if one deleted, `kubectl exec`, …),
    /// or, for another client, its request's verb.
    #[serde(default)]
    pub derived: String,
    /// The `Kubectl-Command` its requests carried: what the client said it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed: Option<String>,
    /// Why the claim does not fit what the requests did, when it does not (a `kubectl get` that
    /// deleted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mismatch: Option<String>,
    /// The `request_id` of the request `derived` is named after (the first with the strongest
    /// effect), whose object a summary line shows: a `kubectl apply` that read pods and deleted
    /// a secret is about the secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_request: Option<u64>,
}

impl Command {
    /// The request a one-line summary names the object of: [`Command::subject_request`], else
    /// (a record from a KMS that did not say) the first request about a resource.
    pub fn subject(&self) -> Option<&RequestSummary> {
        let acting = || self.requests.iter().filter(|r| !r.discovery);
        self.subject_request
            .and_then(|id| acting().find(|r| r.request_id == id))
            .or_else(|| acting().find(|r| r.resource.is_some()))
    }
}

/// One request of a [`Command`]. `status`, the byte counts and `duration_ms` are `null` when the
/// request's end was not recorded (still running, or the gateway died).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestSummary {
    /// When it arrived.
    #[serde(with = "crate::time::rfc3339_millis")]
    pub time: SystemTime,
    /// Its id within the session.
    pub request_id: u64,
    /// HTTP method.
    pub method: String,
    /// Path, as received, without the query.
    pub path: String,
    /// Query string, as received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Status sent to the client.
    pub status: Option<u16>,
    /// The kubectl-view verb (`get`, `list`, `watch`, `exec`, …).
    pub verb: Verb,
    /// The resource (`pods`).
    pub resource: Option<String>,
    /// The namespace.
    pub namespace: Option<String>,
    /// The object name.
    pub name: Option<String>,
    /// Whether it is one of kubectl's discovery requests (`/api`, `/apis/…`, `/openapi/…`).
    pub discovery: bool,
    /// Request body bytes.
    pub bytes_in: Option<u64>,
    /// Response body bytes.
    pub bytes_out: Option<u64>,
    /// From arrival to the end of the response.
    pub duration_ms: Option<u64>,
    /// Why it failed or was cut.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A long-lived stream opened by a request of a [`Command`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StreamSummary {
    /// The request that opened it.
    pub request_id: u64,
    /// What it is.
    pub stream: StreamKind,
    /// When it opened.
    #[serde(with = "crate::time::rfc3339_millis")]
    pub opened_at: SystemTime,
    /// Bytes from the client, once closed.
    pub bytes_in: Option<u64>,
    /// Bytes to the client, once closed.
    pub bytes_out: Option<u64>,
    /// How long it was open, once closed.
    pub duration_ms: Option<u64>,
    /// Why it closed, when not normally (`session expired`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// exec/attach/port-forward: command, container, tty, ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<StreamDetails>,
    /// The number of its recording in the session (1-based, as
    /// [`recordings`](crate::audit::recordings) lists them), when recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording: Option<usize>,
    /// How its recording ended, once it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_ended: Option<RecordingEnded>,
}

type Key<'e> = (&'e SessionId, u64);

/// What each request led to, by request.
#[derive(Default)]
struct Outcomes<'e> {
    finished: HashMap<Key<'e>, &'e RequestFinished>,
    opened: HashMap<Key<'e>, (SystemTime, StreamKind)>,
    closed: HashMap<Key<'e>, &'e StreamClosed>,
    details: HashMap<Key<'e>, &'e StreamDetails>,
    recording: HashMap<Key<'e>, usize>,
    recording_ended: HashMap<Key<'e>, &'e RecordingEnded>,
}

impl<'e> Outcomes<'e> {
    fn index(events: &'e [AuditEvent]) -> Self {
        let mut outcomes = Outcomes::default();
        let mut recordings = 0;
        for event in events {
            let session = &event.session_id;
            match &event.kind {
                AuditEventKind::RequestFinished(f) => {
                    outcomes.finished.insert((session, f.request_id), f);
                }
                AuditEventKind::StreamOpened { request_id, stream } => {
                    let opened = (event.time, *stream);
                    outcomes.opened.insert((session, *request_id), opened);
                }
                AuditEventKind::StreamClosed(c) => {
                    outcomes.closed.insert((session, c.request_id), c);
                }
                AuditEventKind::StreamDetails(d) => {
                    outcomes.details.insert((session, d.request_id), d);
                    if d.recorded {
                        recordings += 1;
                        outcomes
                            .recording
                            .insert((session, d.request_id), recordings);
                    }
                }
                AuditEventKind::RecordingEnded(r) => {
                    outcomes.recording_ended.insert((session, r.request_id), r);
                }
                _ => {}
            }
        }
        outcomes
    }

    fn request(&self, event: &AuditEvent, request: &RequestStarted) -> RequestSummary {
        let finished = self.finished.get(&(&event.session_id, request.request_id));
        RequestSummary {
            time: event.time,
            request_id: request.request_id,
            method: request.method.clone(),
            path: request.path.clone(),
            query: request.query.clone(),
            status: finished.map(|f| f.status),
            verb: request.info.verb.clone(),
            resource: request.info.resource.clone(),
            namespace: request.info.namespace.clone(),
            name: request.info.name.clone(),
            discovery: crate::kube::is_discovery_path(&request.path),
            bytes_in: finished.map(|f| f.bytes_in),
            bytes_out: finished.map(|f| f.bytes_out),
            duration_ms: finished.map(|f| f.duration_ms),
            error: finished.and_then(|f| f.error.clone()),
        }
    }

    fn stream(&self, key: Key<'_>) -> Option<StreamSummary> {
        let (opened_at, stream) = *self.opened.get(&key)?;
        let closed = self.closed.get(&key);
        Some(StreamSummary {
            request_id: key.1,
            stream,
            opened_at,
            bytes_in: closed.map(|c| c.bytes_in),
            bytes_out: closed.map(|c| c.bytes_out),
            duration_ms: closed.map(|c| c.duration_ms),
            reason: closed.and_then(|c| c.reason.clone()),
            details: self.details.get(&key).map(|d| (*d).clone()),
            recording: self.recording.get(&key).copied(),
            recording_ended: self.recording_ended.get(&key).map(|r| (*r).clone()),
        })
    }
}

/// Groups a session's events into commands, oldest first. Events may come in any order; requests
/// are matched to their ends, streams and recordings by session and request id.
pub fn group_commands(events: &[AuditEvent]) -> Vec<Command> {
    let outcomes = Outcomes::index(events);
    let mut started: Vec<(&AuditEvent, &RequestStarted)> = events
        .iter()
        .filter_map(|e| match &e.kind {
            AuditEventKind::RequestStarted(r) => Some((e, &**r)),
            _ => None,
        })
        .collect();
    started.sort_by_key(|(event, _)| event.time);
    let mut grouping = Grouping::default();
    for (event, request) in started {
        grouping.add(&outcomes, event, request);
    }
    grouping.finish()
}

/// One request on its way into a command.
struct Arrival<'e> {
    event: &'e AuditEvent,
    request: &'e RequestStarted,
    summary: RequestSummary,
    stream: Option<StreamSummary>,
}

#[derive(Default)]
struct Grouping<'e> {
    commands: Vec<Command>,
    /// Per command: the first `Kubectl-Command` among its requests.
    claims: Vec<Option<String>>,
    by_invocation: HashMap<(&'e SessionId, &'e str), usize>,
    /// kubectl's header-less discovery requests, waiting for the command they belong to.
    pending: Vec<Arrival<'e>>,
}

impl<'e> Grouping<'e> {
    fn add(&mut self, outcomes: &Outcomes<'e>, event: &'e AuditEvent, request: &'e RequestStarted) {
        let arrival = Arrival {
            event,
            request,
            summary: outcomes.request(event, request),
            stream: outcomes.stream((&event.session_id, request.request_id)),
        };
        let invocation = invocation(request);
        if invocation.is_none() && from_kubectl_dispatcher(request) {
            self.pending.push(arrival);
            return;
        }
        if let Some(id) = invocation {
            for early in std::mem::take(&mut self.pending) {
                self.place(early, Some((&event.session_id, id)));
            }
        }
        self.place(arrival, invocation.map(|i| (&event.session_id, i)));
    }

    /// Adds a request to its invocation's command (`into`), or to a command of its own.
    fn place(&mut self, arrival: Arrival<'e>, into: Option<(&'e SessionId, &'e str)>) {
        let index = match into.and_then(|key| self.by_invocation.get(&key)) {
            Some(&index) => index,
            None => {
                if let Some(key) = into {
                    self.by_invocation.insert(key, self.commands.len());
                }
                self.commands.push(Command {
                    command: arrival.summary.verb.to_string(),
                    started_at: arrival.event.time,
                    kubectl_session: into.map(|(_, id)| id.to_owned()),
                    requests: Vec::new(),
                    streams: Vec::new(),
                    derived: String::new(),
                    claimed: None,
                    mismatch: None,
                    subject_request: None,
                });
                self.claims.push(None);
                self.commands.len() - 1
            }
        };
        let claim = arrival
            .request
            .kubectl_command
            .as_deref()
            .filter(|n| !n.is_empty());
        if let (Some(name), None) = (claim, &self.claims[index]) {
            self.claims[index] = Some(name.to_owned());
        }
        let command = &mut self.commands[index];
        command.requests.push(arrival.summary);
        command.streams.extend(arrival.stream);
    }

    fn finish(mut self) -> Vec<Command> {
        // No kubectl command after them: the last one before them. None at all (a kubectl that
        // gave up after its version check): a command of their own, so nothing is hidden.
        for early in std::mem::take(&mut self.pending) {
            let last = self
                .by_invocation
                .iter()
                .filter(|(key, _)| *key.0 == early.event.session_id)
                .max_by_key(|(_, index)| **index)
                .map(|(key, _)| *key);
            self.place(early, last);
        }
        for (command, claim) in self.commands.iter_mut().zip(self.claims) {
            claims::judge(command, claim);
            // A command is named by the first `Kubectl-Command` among its requests; for other
            // clients by what its request did.
            command.command = command
                .claimed
                .clone()
                .unwrap_or_else(|| command.derived.clone());
        }
        self.commands
    }
}

fn invocation(request: &RequestStarted) -> Option<&str> {
    request.kubectl_session.as_deref().filter(|s| !s.is_empty())
}

/// kubectl's version dispatcher (`kubectl-dispatcher/v1.0 …`), which checks `/version` before
/// kubectl proper runs.
fn from_kubectl_dispatcher(request: &RequestStarted) -> bool {
    request
        .user_agent
        .as_deref()
        .is_some_and(|ua| ua.starts_with("kubectl-dispatcher/"))
}

#[path = "commands_claims.rs"]
mod claims;

#[path = "commands_line.rs"]
mod line;
pub use line::{CommandLine, Outcome, RequestState};

#[cfg(test)]
#[path = "commands_tests.rs"]
mod tests;
