//! A command as one line a person reads (and types into a search box): `kubectl get pods -n
//! default`, `kubectl exec pods/web -n default -- echo hi`. The CLI's `pam sessions show`, the
//! console's session page and KMS's command search (each session's lines, stored at ingest) all
//! take it from [`Command::line`]; and how its requests stand ([`Command::outcome`]): a watch
//! still open is running, not failed.

use std::fmt;

use super::{Command, RequestSummary};

/// [`Command::line`]: what the command did, then what its client claimed when that names
/// another subcommand. Displayed as `kubectl get deployments/my-app -n default  (client:
/// kubectl describe)`, the text KMS searches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandLine {
    /// What its requests did (`derived`, or the claim from a KMS that did not derive), the object
    /// of the request it is named after (`pods/web`, `pods`) and its namespace (`-n default`),
    /// and each exec's command line (`-- echo hi`). Only what the requests show: flags kubectl
    /// kept to itself are not guessed.
    pub text: String,
    /// The `Kubectl-Command` the client sent, when it is not the subcommand `text` starts with
    /// (a `kubectl describe` reads as `kubectl get`).
    pub client: Option<String>,
}

impl fmt::Display for CommandLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)?;
        if let Some(client) = &self.client {
            write!(f, "  (client: {client})")?;
        }
        Ok(())
    }
}

/// How one request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestState {
    /// It ended with a status below 400 (a stream: 101 or 2xx, then closed).
    Succeeded,
    /// No end recorded yet while its session is open: a watch, `logs -f`, exec or port-forward
    /// still going (or a request in flight).
    Running,
    /// It ended with a status of 400 or more, or its session ended without its end recorded
    /// (the gateway died).
    Failed,
}

/// How a command's requests stand, counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Requests that succeeded.
    pub succeeded: usize,
    /// Requests still running.
    pub running: usize,
    /// Requests that failed, or whose end was never recorded.
    pub failed: usize,
}

impl RequestSummary {
    /// How this request stands; `open` says whether its session is still active (a request
    /// without an end is running then, and failed once the session is over).
    pub fn state(&self, open: bool) -> RequestState {
        match self.status {
            Some(status) if status < 400 => RequestState::Succeeded,
            Some(_) => RequestState::Failed,
            None if open => RequestState::Running,
            None => RequestState::Failed,
        }
    }
}

impl Command {
    /// The command as one line; see [`CommandLine`].
    pub fn line(&self) -> CommandLine {
        // A KMS older than derived names sends only the claim.
        let did = if self.derived.is_empty() {
            &self.command
        } else {
            &self.derived
        };
        let mut text = did.clone();
        if let Some(subject) = self.subject() {
            if let Some(resource) = &subject.resource {
                text.push(' ');
                text.push_str(resource);
                if let Some(name) = &subject.name {
                    text.push('/');
                    text.push_str(name);
                }
                if let Some(namespace) = &subject.namespace {
                    text.push_str(" -n ");
                    text.push_str(namespace);
                }
            }
        }
        for stream in &self.streams {
            let argv = stream.details.as_ref().map_or(&[][..], |d| &d.command[..]);
            if !argv.is_empty() {
                text.push_str(" -- ");
                text.push_str(&argv.join(" "));
            }
        }
        let client = self
            .claimed
            .as_deref()
            .filter(|claim| *claim != did && !claim.starts_with(&format!("{did} ")))
            .map(str::to_owned);
        CommandLine { text, client }
    }

    /// How its requests stand; `open` says whether the session is still active.
    pub fn outcome(&self, open: bool) -> Outcome {
        let mut outcome = Outcome::default();
        for request in &self.requests {
            match request.state(open) {
                RequestState::Succeeded => outcome.succeeded += 1,
                RequestState::Running => outcome.running += 1,
                RequestState::Failed => outcome.failed += 1,
            }
        }
        outcome
    }
}

#[cfg(test)]
#[path = "commands_line_tests.rs"]
mod tests;
