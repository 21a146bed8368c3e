//! `kms-pam pam grant create|list|delete` (admin).

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use kms_pam::kms::api::CreateGrant;

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
    },
    /// List grants.
    List,
    /// Remove a grant.
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
        } => {
            let request = CreateGrant {
                resource: target.resource.clone(),
                account: target.account.clone(),
                user,
                max_duration_secs: max_duration.map(|d| d.as_secs()),
            };
            let grant = client.grants().create(&request).await?;
            if globals.json() {
                output::print_json(&grant)?;
            } else {
                output::print(&format!(
                    "Granted {} access to {target} for sessions up to {} (grant {}).\n",
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
            let mut table = Table::new(&["ID", "ACCOUNT", "USER", "MAX DURATION", "CREATED"]);
            for grant in grants {
                table.row(vec![
                    grant.id,
                    format!("{}/{}", grant.resource, grant.account),
                    grant.user,
                    output::duration(Duration::from_secs(grant.max_duration_secs)),
                    output::time(grant.created_at),
                ]);
            }
            table.print("No grants found.")?;
        }
        GrantCommand::Delete { id } => {
            client.grants().delete(&id).await?;
            output::print(&format!("Deleted grant {id}.\n"))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
