//! `kms-pam pam sessions list|show|terminate|verify`.

mod show;

use std::io::Write as _;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use kms_pam::kms::api::SessionView;
use kms_pam::kms::client::SessionFilter;
use kms_pam::session::{EndCause, SessionId};

use crate::commands::verdict;
use crate::globals::{Globals, KmsUrl};
use crate::output::{self, inert, Table};

/// `pam sessions ...`.
#[derive(Debug, Args)]
pub(crate) struct SessionsArgs {
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
        /// Print the output of the session's N-th recorded exec or attach instead.
        #[arg(long, value_name = "N")]
        recording: Option<usize>,
    },
    /// Check the session's record: exit 0 intact, 3 altered, 4 truncated, 5 metadata changed.
    Verify {
        /// Session id.
        id: String,
        /// Exit 0 for a record KMS has signed no head for yet (an active session), instead of
        /// 7 (unsealed).
        #[arg(long)]
        allow_unsealed: bool,
    },
    /// Write the session's record as a self-contained JSON bundle, for `kms-pam verify-bundle`.
    Export {
        /// Session id.
        id: String,
        /// Write it to this file (mode 0600) instead of standard output.
        #[arg(long = "out", value_name = "FILE")]
        out: Option<std::path::PathBuf>,
    },
    /// End an active session everywhere at once (admin).
    Terminate {
        /// Session id.
        id: String,
    },
}

/// Runs `pam sessions ...`.
pub(crate) async fn run(args: SessionsArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let globals = globals.with(&args.kms);
    let client = globals.client()?;
    match args.command {
        SessionsCommand::List {
            active,
            user,
            resource,
        } => {
            let filter = SessionFilter::default()
                .with_active(active)
                .with_user(user)
                .with_resource(resource);
            let sessions = client.sessions().list(&filter).await?;
            if globals.json() {
                output::print_json(&sessions)?;
            } else {
                list(&sessions)?;
            }
        }
        SessionsCommand::Show {
            id,
            recording: Some(number),
        } => {
            let recording = client
                .sessions()
                .recording(&SessionId::new(id), number)
                .await?;
            if globals.json() {
                output::print_json(&recording)?;
            } else {
                let bytes = recording
                    .output()
                    .ok_or_else(|| anyhow::anyhow!("KMS sent a recording that is not base64"))?;
                let mut stdout = std::io::stdout().lock();
                stdout.write_all(&bytes)?;
                stdout.flush()?;
                for gap in &recording.gaps {
                    eprintln!(
                        "note: {} bytes of channel {} ({}) from byte {} on were not recorded \
                         (recording cap)",
                        gap.bytes,
                        gap.channel,
                        channel_name(gap.channel),
                        gap.offset
                    );
                }
            }
        }
        SessionsCommand::Show {
            id,
            recording: None,
        } => {
            let detail = client.sessions().detail(&SessionId::new(id)).await?;
            if globals.json() {
                output::print_json(&detail)?;
            } else {
                output::print(&show::describe(&detail))?;
            }
        }
        SessionsCommand::Verify { id, allow_unsealed } => {
            let verdict = client.sessions().verify(&SessionId::new(id)).await?;
            return verdict::report(&verdict, globals.json(), allow_unsealed);
        }
        SessionsCommand::Export { id, out } => {
            let bundle = client.sessions().export(&SessionId::new(id)).await?;
            let mut json = serde_json::to_string_pretty(&bundle)?;
            json.push('\n');
            match &out {
                Some(path) => write_private(path, json.as_bytes())?,
                None => output::print(&json)?,
            }
            let gateway = bundle
                .gateway_key
                .map_or_else(|| "none".to_owned(), |k| k.fingerprint());
            eprintln!(
                "Session {}: {} events. Check offline with: kms-pam verify-bundle {} \
                 --gateway-key {gateway} --kms-key {}  (compare both fingerprints with the ones \
                 the gateway and KMS logged when they made their keys)",
                bundle.session.id,
                bundle.events.len(),
                out.as_ref()
                    .map_or("FILE".to_owned(), |p| p.display().to_string()),
                bundle.kms_key.fingerprint(),
            );
        }
        SessionsCommand::Terminate { id } => {
            let view = client.sessions().terminate(&SessionId::new(id)).await?;
            if globals.json() {
                output::print_json(&view)?;
            } else {
                output::print(&format!(
                    "Session {} of {} is {}.\n",
                    view.session.id,
                    inert(&view.session.user),
                    view.session.status
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
            status_with_cause(view),
            output::time(s.created_at),
            output::time(s.expires_at),
            output::time_or_dash(s.ended_at),
            output::or_dash(s.reason.as_deref()),
        ]);
    }
    table.print("No sessions found.")
}

/// `active`, `ended`, `expired`; with the cause when it is not the obvious one:
/// `ended (abandoned)`, `terminated (user_disabled)`.
fn status_with_cause(view: &SessionView) -> String {
    match view.end_cause {
        Some(EndCause::User | EndCause::Expiry) | None => view.session.status.to_string(),
        Some(cause) => format!("{} ({cause})", view.session.status),
    }
}

/// The Kubernetes name of an exec channel.
fn channel_name(channel: u8) -> &'static str {
    match channel {
        0 => "stdin",
        1 => "stdout",
        2 => "stderr",
        3 => "status",
        4 => "resize",
        _ => "other",
    }
}

/// Writes `bytes` to a new file readable by its owner only (a bundle holds every command),
/// never through a symbolic link.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let mut file = kms_pam::fsutil::create_new_private(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}
