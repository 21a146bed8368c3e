//! `kms-pam pam sessions list|show|terminate`.

use std::fmt::Write as _;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use kms_pam::kms::api::{CommandRequest, SessionDetail, SessionView};
use kms_pam::kms::client::SessionFilter;
use kms_pam::session::SessionId;

use crate::cli::KmsUrl;
use crate::commands::Globals;
use crate::output::{self, Table};

/// `pam sessions ...`.
#[derive(Debug, Args)]
pub struct SessionsArgs {
    #[command(flatten)]
    kms: KmsUrl,
    #[command(subcommand)]
    command: SessionsCommand,
}

#[derive(Debug, Subcommand)]
enum SessionsCommand {
    /// List sessions (members see their own).
    List {
        /// Only active sessions.
        #[arg(long)]
        active: bool,
        /// Only this user's sessions.
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
        /// Only sessions of this resource.
        #[arg(long, value_name = "NAME")]
        resource: Option<String>,
    },
    /// Show a session: metadata, then every kubectl command with its requests.
    Show {
        /// Session id.
        id: String,
    },
    /// End an active session everywhere at once (admin).
    Terminate {
        /// Session id.
        id: String,
    },
}

/// Runs `pam sessions ...`.
pub async fn run(args: SessionsArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let globals = globals.with(&args.kms);
    let client = globals.client()?;
    match args.command {
        SessionsCommand::List {
            active,
            user,
            resource,
        } => {
            let filter = SessionFilter {
                active,
                user,
                resource,
            };
            let sessions = client.list_sessions(&filter).await?;
            if globals.json() {
                output::print_json(&sessions)?;
            } else {
                list(&sessions)?;
            }
        }
        SessionsCommand::Show { id } => {
            let detail = client.get_session(&SessionId::new(id)).await?;
            if globals.json() {
                output::print_json(&detail)?;
            } else {
                output::print(&describe(&detail))?;
            }
        }
        SessionsCommand::Terminate { id } => {
            let view = client.terminate_session(&SessionId::new(id)).await?;
            if globals.json() {
                output::print_json(&view)?;
            } else {
                output::print(&format!(
                    "Session {} of {} is {}.\n",
                    view.session.id, view.session.user, view.session.status
                ))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn list(sessions: &[SessionView]) -> anyhow::Result<()> {
    let mut table = Table::new(&[
        "ID", "USER", "ACCOUNT", "GATEWAY", "STATUS", "CREATED", "EXPIRES", "ENDED", "REASON",
    ]);
    for view in sessions {
        let s = &view.session;
        table.row(vec![
            s.id.to_string(),
            s.user.clone(),
            format!("{}/{}", s.resource, s.account),
            s.gateway.clone(),
            s.status.to_string(),
            output::time(s.created_at),
            output::time(s.expires_at),
            output::time_or_dash(s.ended_at),
            output::or_dash(s.reason.as_deref()),
        ]);
    }
    table.print("No sessions found.")
}

fn describe(detail: &SessionDetail) -> String {
    let s = &detail.session.session;
    let status = match detail.session.end_cause {
        Some(cause) => format!("{} ({})", s.status, format!("{cause:?}").to_lowercase()),
        None => s.status.to_string(),
    };
    let mut out = String::new();
    let _ = write!(
        out,
        "Session:  {}\nUser:     {}\nAccount:  {}/{}\nGateway:  {}\nStatus:   {status}\n\
         Created:  {}\nExpires:  {}\nEnded:    {}\nReason:   {}\n",
        s.id,
        s.user,
        s.resource,
        s.account,
        s.gateway,
        output::time(s.created_at),
        output::time(s.expires_at),
        output::time_or_dash(s.ended_at),
        output::or_dash(s.reason.as_deref()),
    );
    if detail.commands.is_empty() {
        out.push_str("\nNo commands recorded.\n");
        return out;
    }
    out.push_str("\nCommands:\n");
    for command in &detail.commands {
        let _ = writeln!(
            out,
            "\n  {}  {}",
            output::time(command.started_at),
            command.command
        );
        let discovery = command.requests.iter().filter(|r| is_discovery(r)).count();
        for request in command.requests.iter().filter(|r| !is_discovery(r)) {
            let _ = writeln!(out, "    {}", describe_request(request));
        }
        if discovery > 0 {
            let _ = writeln!(out, "    (+{discovery} discovery requests)");
        }
    }
    out
}

/// kubectl's API discovery requests, which say nothing about what the person did.
fn is_discovery(request: &CommandRequest) -> bool {
    request
        .extra
        .get("discovery")
        .and_then(serde_json::Value::as_bool)
        == Some(true)
}

/// `200  list pods in default  GET /api/v1/namespaces/default/pods`.
fn describe_request(request: &CommandRequest) -> String {
    let status = request
        .status
        .map_or_else(|| "-".to_owned(), |s| s.to_string());
    let mut what = request.verb.clone().unwrap_or_default();
    for part in [&request.resource, &request.name].into_iter().flatten() {
        what.push(' ');
        what.push_str(part);
    }
    if let Some(namespace) = &request.namespace {
        what.push_str(&format!(" in {namespace}"));
    }
    format!("{status:<3}  {what}  {} {}", request.method, request.path)
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    #[test]
    fn requests_read_as_what_was_done() {
        let mut request = CommandRequest {
            time: SystemTime::UNIX_EPOCH,
            method: "GET".into(),
            path: "/api/v1/namespaces/default/pods/web".into(),
            status: Some(200),
            verb: Some("get".into()),
            resource: Some("pods".into()),
            namespace: Some("default".into()),
            name: Some("web".into()),
            extra: serde_json::Map::new(),
        };
        assert_eq!(
            describe_request(&request),
            "200  get pods web in default  GET /api/v1/namespaces/default/pods/web"
        );
        assert!(!is_discovery(&request));
        request.extra.insert("discovery".into(), true.into());
        assert!(is_discovery(&request));
    }
}
