//! `kms-pam pam grant create|list|revoke|delete` (admin).

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::bail;
use clap::{Args, Subcommand};
use kms_pam::kms::api::{CreateGrant, Grant, GrantStatus};
use kms_pam::time::{format_rfc3339, parse_duration, parse_rfc3339};

use super::account_ref::AccountRef;
use crate::globals::{Globals, KmsUrl};
use crate::output::{self, Table};

/// `pam grant ...`.
#[derive(Debug, Args)]
pub(crate) struct GrantArgs {
    #[command(flatten)]
    kms: KmsUrl,
    #[command(subcommand)]
    command: GrantCommand,
}

#[derive(Debug, Subcommand)]
enum GrantCommand {
    /// Let a user open sessions for an account (admins need no grant).
    Create {
        /// RESOURCE/ACCOUNT.
        target: AccountRef,
        /// The user.
        #[arg(long, value_name = "NAME")]
        user: String,
        /// Longest session this grant allows (default: the account's maximum).
        #[arg(long, value_name = "DURATION", value_parser = kms_pam::time::parse_duration)]
        max_duration: Option<Duration>,
        /// When the grant expires: a duration from now (2h, 30m) or an RFC 3339 instant
        /// (default: never). Its sessions end then.
        #[arg(
            long,
            value_name = "DURATION|RFC3339",
            value_parser = parse_until,
            allow_hyphen_values = true
        )]
        until: Option<Until>,
    },
    /// List grants, with their status (active, expired, revoked) and expiry.
    List,
    /// Revoke a grant: its sessions end, it stays listed as revoked, with who and why.
    Revoke {
        /// Grant id (see `pam grant list`).
        id: String,
        /// Why (shown in `pam grant list`).
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
    /// Remove a grant (its sessions end; it is no longer listed).
    Delete {
        /// Grant id (see `pam grant list`).
        id: String,
    },
}

/// Runs `pam grant ...`.
pub(crate) async fn run(args: GrantArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let globals = globals.with(&args.kms);
    let client = globals.client()?;
    match args.command {
        GrantCommand::Create {
            target,
            user,
            max_duration,
            until,
        } => {
            let request = CreateGrant {
                resource: target.resource.clone(),
                account: target.account.clone(),
                user,
                max_duration_secs: max_duration.map(|d| d.as_secs()),
                expires_at: until.map(Until::instant).transpose()?,
            };
            let grant = client.grants().create(&request).await?;
            if globals.json() {
                output::print_json(&grant)?;
            } else {
                let until = grant.expires_at.map_or_else(
                    || " (no expiry)".to_owned(),
                    |t| format!(" until {}", output::time(t)),
                );
                output::print(&format!(
                    "Granted {} access to {target} for sessions up to {}{until} (grant {}).\n",
                    grant.user,
                    output::duration(Duration::from_secs(grant.max_duration_secs)),
                    grant.id
                ))?;
            }
        }
        GrantCommand::List => {
            let grants = client.grants().list().await?;
            if globals.json() {
                output::print_json(&grants)?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut table = Table::new(&[
                "ID",
                "ACCOUNT",
                "USER",
                "MAX DURATION",
                "STATUS",
                "EXPIRES",
                "CREATED",
            ]);
            for grant in grants {
                table.row(vec![
                    grant.id.clone(),
                    format!("{}/{}", grant.resource, grant.account),
                    grant.user.clone(),
                    output::duration(Duration::from_secs(grant.max_duration_secs)),
                    status(&grant),
                    output::time_or_dash(grant.expires_at),
                    output::time(grant.created_at),
                ]);
            }
            table.print("No grants found.")?;
        }
        GrantCommand::Revoke { id, reason } => {
            let grant = client.grants().revoke(&id, &reason).await?;
            if globals.json() {
                output::print_json(&grant)?;
            } else {
                output::print(&format!(
                    "Revoked grant {id} ({} on {}/{}); the sessions opened under it were ended.\n",
                    grant.user, grant.resource, grant.account
                ))?;
            }
        }
        GrantCommand::Delete { id } => {
            client.grants().delete(&id).await?;
            output::print(&format!("Deleted grant {id}.\n"))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `active`, `expired`, or `revoked by alice: moved teams`.
fn status(grant: &Grant) -> String {
    match (grant.status, &grant.revoked_by) {
        (GrantStatus::Revoked, Some(by)) => format!(
            "revoked by {}: {}",
            output::inert(by),
            output::or_dash(grant.revoke_reason.as_deref())
        ),
        (status, _) => status.to_string(),
    }
}

/// `--until`: a duration from now or an instant.
#[derive(Clone, Debug)]
enum Until {
    In(Duration),
    At(SystemTime),
}

impl Until {
    /// The instant, which must be later than now.
    fn instant(self) -> anyhow::Result<SystemTime> {
        let now = SystemTime::now();
        match self {
            Self::In(after) => Ok(now + after),
            Self::At(at) if at > now => Ok(at),
            Self::At(at) => bail!(
                "--until {} is not in the future: a grant must expire later than now",
                format_rfc3339(at)
            ),
        }
    }
}

fn parse_until(text: &str) -> Result<Until, String> {
    if let Some(at) = parse_rfc3339(text) {
        return Ok(Until::At(at));
    }
    match parse_duration(text) {
        Ok(after) => Ok(Until::In(after)),
        Err(_) if text.trim().starts_with(['0', '-']) => Err(format!(
            "{text:?} is not in the future: give a duration from now greater than zero (2h, \
             30m) or a later RFC 3339 instant"
        )),
        Err(_) => Err(format!(
            "invalid expiry {text:?}: give a duration from now (2h, 30m, 1d) or an RFC 3339 \
             instant (2026-12-31T18:00:00Z)"
        )),
    }
}
