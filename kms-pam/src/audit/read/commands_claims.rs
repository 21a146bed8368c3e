//! What a command did, read from its requests, against what its client claimed: the
//! `Kubectl-Command` header is the client's word, so the name a reviewer reads first is derived
//! from the requests' verbs, and a claim they contradict (a `kubectl get` that deleted) is
//! flagged.

use super::{Command, RequestSummary};
use crate::kube::Verb;

/// The kinds of effect a request has, as far as claims go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Effect {
    Read,
    Create,
    Update,
    Patch,
    Delete,
    Exec,
    Attach,
    PortForward,
    Proxy,
}

impl Effect {
    fn of(request: &RequestSummary) -> Self {
        match request.verb {
            Verb::Create | Verb::Post => Self::Create,
            Verb::Update | Verb::Put => Self::Update,
            Verb::Patch => Self::Patch,
            Verb::Delete | Verb::DeleteCollection => Self::Delete,
            Verb::Exec => Self::Exec,
            Verb::Attach => Self::Attach,
            Verb::PortForward => Self::PortForward,
            Verb::Proxy | Verb::Connect => Self::Proxy,
            _ => Self::Read,
        }
    }

    /// kubectl's word for a command whose strongest effect this is, and that strength.
    fn kubectl_word(self, verb: &Verb) -> (&'static str, u8) {
        match self {
            Self::Exec => ("exec", 9),
            Self::Attach => ("attach", 8),
            Self::PortForward => ("port-forward", 7),
            Self::Proxy => ("proxy", 6),
            Self::Delete => ("delete", 5),
            Self::Create => ("create", 4),
            Self::Update => ("replace", 3),
            Self::Patch => ("patch", 3),
            Self::Read if *verb == Verb::Log => ("logs", 2),
            Self::Read => ("get", 1),
        }
    }

    /// What a request with this effect did, for a sentence: `deleted`.
    fn past(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Create => "created",
            Self::Update => "replaced",
            Self::Patch => "patched",
            Self::Delete => "deleted",
            Self::Exec => "ran a command in",
            Self::Attach => "attached to",
            Self::PortForward => "port-forwarded to",
            Self::Proxy => "proxied to",
        }
    }
}

use Effect::{Attach, Create, Delete, Exec, Patch, PortForward, Read, Update};

/// The effects a kubectl subcommand may have; `None` when it is not judged (`kubectl proxy`
/// forwards anything, and subcommands this table does not know are left alone).
fn allowed(subcommand: &str) -> Option<&'static [Effect]> {
    Some(match subcommand {
        "get" | "describe" | "explain" | "top" | "api-resources" | "api-versions" | "version"
        | "cluster-info" | "events" | "wait" | "logs" | "config" | "completion" => &[Read],
        "exec" | "cp" => &[Read, Exec],
        "attach" => &[Read, Attach],
        "port-forward" => &[Read, PortForward],
        "delete" => &[Read, Delete],
        "create" | "expose" => &[Read, Create],
        "apply" | "replace" => &[Read, Create, Update, Patch, Delete],
        "patch" | "label" | "annotate" | "scale" | "set" | "rollout" | "edit" | "autoscale"
        | "taint" | "cordon" | "uncordon" | "certificate" => &[Read, Create, Update, Patch],
        "run" => &[Read, Create, Attach, Delete],
        "debug" => &[Read, Create, Patch, Attach, Exec],
        "drain" => &[Read, Create, Patch, Delete],
        _ => return None,
    })
}

/// Requests that change nothing whatever their verb: access reviews (`kubectl auth can-i`)
/// and server-side dry runs (`kubectl diff`).
fn harmless(request: &RequestSummary) -> bool {
    let review = request
        .resource
        .as_deref()
        .is_some_and(|r| r.ends_with("reviews"));
    let dry_run = request
        .query
        .as_deref()
        .is_some_and(|q| q.split('&').any(|p| p.starts_with("dryRun=")));
    (review && matches!(request.verb, Verb::Create)) || dry_run
}

/// Fills in what the command's requests did (`derived`), what its client claimed, and whether
/// the claim contradicts the requests.
pub(super) fn judge(command: &mut Command, claimed: Option<String>) {
    let acting: Vec<&RequestSummary> = command.requests.iter().filter(|r| !r.discovery).collect();
    // The first request with the strongest effect: what the command is named after and about.
    let mut subject: Option<(&RequestSummary, u8)> = None;
    for request in &acting {
        let strength = Effect::of(request).kubectl_word(&request.verb).1;
        if subject.is_none_or(|(_, strongest)| strength > strongest) {
            subject = Some((request, strength));
        }
    }
    command.subject_request = subject.map(|(request, _)| request.request_id);
    let strongest = subject.map(|(request, _)| (Effect::of(request), &request.verb));
    let first_verb = command.requests.first().map(|r| r.verb.to_string());
    command.derived = match (&claimed, strongest) {
        (Some(_), Some((effect, verb))) => format!("kubectl {}", effect.kubectl_word(verb).0),
        (Some(_), None) => "kubectl get".to_owned(),
        // Another client: the verb of its (one) request, as it always was.
        (None, Some((_, verb))) => verb.to_string(),
        (None, None) => first_verb.unwrap_or_default(),
    };
    command.mismatch = claimed
        .as_deref()
        .and_then(|claim| contradiction(claim, &acting));
    command.claimed = claimed;
}

/// Why `claim` does not fit `requests`, if it does not.
fn contradiction(claim: &str, requests: &[&RequestSummary]) -> Option<String> {
    let subcommand = claim.strip_prefix("kubectl ")?.split_whitespace().next()?;
    let allowed = allowed(subcommand)?;
    let odd = requests
        .iter()
        .find(|r| !harmless(r) && !allowed.contains(&Effect::of(r)))?;
    let mut what = odd.resource.clone().unwrap_or_else(|| odd.path.clone());
    if let Some(name) = &odd.name {
        what = format!("{what}/{name}");
    }
    if let Some(namespace) = &odd.namespace {
        what = format!("{what} in {namespace}");
    }
    Some(format!(
        "the client said {claim:?}, but the command {} {what} ({} {})",
        Effect::of(odd).past(),
        odd.method,
        odd.path
    ))
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    fn request(method: &str, verb: Verb, resource: &str, query: Option<&str>) -> RequestSummary {
        RequestSummary {
            time: SystemTime::UNIX_EPOCH,
            request_id: 1,
            method: method.into(),
            path: format!("/api/v1/namespaces/default/{resource}/x"),
            query: query.map(str::to_owned),
            status: Some(200),
            verb,
            resource: Some(resource.into()),
            namespace: Some("default".into()),
            name: Some("x".into()),
            discovery: false,
            bytes_in: None,
            bytes_out: None,
            duration_ms: None,
            error: None,
        }
    }

    fn judged(claim: Option<&str>, requests: Vec<RequestSummary>) -> Command {
        let mut command = Command {
            command: String::new(),
            started_at: SystemTime::UNIX_EPOCH,
            kubectl_session: None,
            requests,
            streams: Vec::new(),
            derived: String::new(),
            claimed: None,
            mismatch: None,
            subject_request: None,
        };
        judge(&mut command, claim.map(str::to_owned));
        command
    }

    #[test]
    fn a_get_that_deleted_is_flagged_and_named_by_what_it_did() {
        let get = request("GET", Verb::Get, "configmaps", None);
        let delete = request("DELETE", Verb::Delete, "configmaps", None);
        let command = judged(Some("kubectl get"), vec![get, delete]);
        assert_eq!(command.derived, "kubectl delete");
        assert_eq!(command.claimed.as_deref(), Some("kubectl get"));
        let why = command.mismatch.expect("flagged");
        assert!(
            why.contains("said \"kubectl get\", but the command deleted configmaps/x in default"),
            "{why}"
        );
    }

    #[test]
    fn honest_commands_are_not_flagged() {
        let cases = [
            (
                "kubectl get",
                vec![request("GET", Verb::List, "pods", None)],
                "kubectl get",
            ),
            (
                "kubectl describe",
                vec![request("GET", Verb::Get, "pods", None)],
                "kubectl get",
            ),
            (
                "kubectl create configmap",
                vec![request("POST", Verb::Create, "configmaps", None)],
                "kubectl create",
            ),
            (
                "kubectl apply",
                vec![
                    request("GET", Verb::Get, "deployments", None),
                    request("PATCH", Verb::Patch, "deployments", None),
                ],
                "kubectl patch",
            ),
            (
                "kubectl cp",
                vec![request("GET", Verb::Exec, "pods", None)],
                "kubectl exec",
            ),
            (
                "kubectl auth can-i",
                vec![request(
                    "POST",
                    Verb::Create,
                    "selfsubjectaccessreviews",
                    None,
                )],
                "kubectl create",
            ),
            (
                "kubectl diff",
                vec![request("PATCH", Verb::Patch, "pods", Some("dryRun=All"))],
                "kubectl patch",
            ),
            (
                "kubectl logs",
                vec![request("GET", Verb::Log, "pods", Some("follow=true"))],
                "kubectl logs",
            ),
        ];
        for (claim, requests, derived) in cases {
            let command = judged(Some(claim), requests);
            assert_eq!(command.derived, derived, "{claim}");
            assert_eq!(command.mismatch, None, "{claim}");
        }
    }

    #[test]
    fn other_clients_and_unknown_subcommands_are_named_but_not_judged() {
        let curl = judged(None, vec![request("DELETE", Verb::Delete, "pods", None)]);
        assert_eq!((curl.derived.as_str(), curl.mismatch), ("delete", None));
        let plugin = judged(
            Some("kubectl mything"),
            vec![request("DELETE", Verb::Delete, "pods", None)],
        );
        assert_eq!(plugin.derived, "kubectl delete");
        assert_eq!(plugin.mismatch, None);
        let exec = judged(
            Some("kubectl logs"),
            vec![request("GET", Verb::Exec, "pods", None)],
        );
        assert!(exec.mismatch.unwrap().contains("ran a command in pods/x"));
    }

    /// Issue 14 point 3: the summary's object comes from the request that names the command,
    /// not from the first one: an apply that read pods and deleted a secret is about the secret.
    #[test]
    fn the_subject_is_the_first_request_with_the_strongest_effect() {
        let mut get = request("GET", Verb::Get, "pods", None);
        get.request_id = 1;
        let mut delete = request("DELETE", Verb::Delete, "secrets", None);
        delete.request_id = 2;
        let command = judged(Some("kubectl apply"), vec![get.clone(), delete]);
        assert_eq!(command.derived, "kubectl delete");
        assert_eq!(command.subject_request, Some(2));
        assert_eq!(
            command.subject().and_then(|r| r.resource.as_deref()),
            Some("secrets")
        );

        // Equal effects: the first request is the subject (`kubectl get pods,deployments`).
        let mut deployments = request("GET", Verb::Get, "deployments", None);
        deployments.request_id = 3;
        let command = judged(Some("kubectl get"), vec![get, deployments]);
        assert_eq!(command.subject_request, Some(1));
    }
}
