//! `kms-pam pam account create|update|list|delete`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use kms_pam::kms::api::{Account, CreateAccount, UpdateAccount};
use serde::Serialize;

use super::account_ref::{access_command, AccountRef};
use crate::globals::{Globals, KmsUrl};
use crate::output::{self, Table};
use crate::secret_input::read_secret_file;

/// `pam account ...`.
#[derive(Debug, Args)]
pub(crate) struct AccountArgs {
    #[command(flatten)]
    kms: KmsUrl,
    #[command(subcommand)]
    command: AccountCommand,
}

#[derive(Debug, Subcommand)]
enum AccountCommand {
    /// Store a service-account token for a resource (admin). The token is encrypted in KMS and
    /// never shown again.
    Create {
        /// RESOURCE/ACCOUNT.
        target: AccountRef,
        /// File holding the service-account token; `-` reads standard input.
        #[arg(long, value_name = "FILE")]
        token_file: PathBuf,
        /// What the account may do, for people choosing one.
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
        /// Longest session allowed (default 8h).
        #[arg(long, value_name = "DURATION", value_parser = kms_pam::time::parse_duration)]
        max_duration: Option<Duration>,
    },
    /// Change an account (admin): only what is given changes; without --token-file the stored
    /// token stays as it is.
    Update {
        /// RESOURCE/ACCOUNT.
        target: AccountRef,
        /// File holding a new service-account token; `-` reads standard input.
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
        /// New description; an empty one clears it.
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
        /// New longest session.
        #[arg(long, value_name = "DURATION", value_parser = kms_pam::time::parse_duration)]
        max_duration: Option<Duration>,
    },
    /// List accounts (members see the ones granted to them), with the command to access each.
    List {
        /// Only this resource's accounts.
        resource: Option<String>,
    },
    /// Delete an account (admin).
    Delete {
        /// RESOURCE/ACCOUNT.
        target: AccountRef,
    },
}

/// An account as `-o json` prints it: the API's shape plus the command to copy.
#[derive(Serialize)]
struct AccountRow {
    #[serde(flatten)]
    account: Account,
    access_command: String,
}

/// Runs `pam account ...`.
pub(crate) async fn run(args: AccountArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let globals = globals.with(&args.kms);
    match args.command {
        AccountCommand::Create {
            target,
            token_file,
            description,
            max_duration,
        } => {
            // Read first: a bad file must fail before anything is sent.
            let request = CreateAccount {
                name: target.account.clone(),
                token: read_secret_file(&token_file)?,
                description,
                max_duration_secs: max_duration.map(|d| d.as_secs()),
            };
            let account = globals
                .client()?
                .accounts()
                .create(&target.resource, &request)
                .await?;
            if globals.json() {
                output::print_json(&row(account))?;
            } else {
                output::print(&format!(
                    "Created account {target} (sessions up to {}). Access it with:\n\n  {}\n",
                    output::duration(Duration::from_secs(account.max_duration_secs)),
                    access_command(&account.resource, &account.name)
                ))?;
            }
        }
        AccountCommand::Update {
            target,
            token_file,
            description,
            max_duration,
        } => {
            if token_file.is_none() && description.is_none() && max_duration.is_none() {
                anyhow::bail!(
                    "nothing to change: give --token-file, --description or --max-duration"
                );
            }
            // Read first: a bad file must fail before anything is sent.
            let token = token_file.as_deref().map(read_secret_file).transpose()?;
            let replaced = token.is_some();
            let request = UpdateAccount {
                description,
                max_duration_secs: max_duration.map(|d| d.as_secs()),
                token,
            };
            let account = globals
                .client()?
                .accounts()
                .update(&target.resource, &target.account, &request)
                .await?;
            if globals.json() {
                output::print_json(&row(account))?;
            } else {
                output::print(&format!(
                    "Updated account {target} (sessions up to {}; token {}).\n",
                    output::duration(Duration::from_secs(account.max_duration_secs)),
                    if replaced { "replaced" } else { "unchanged" }
                ))?;
            }
        }
        AccountCommand::List { resource } => {
            let accounts = globals
                .client()?
                .accounts()
                .list(resource.as_deref())
                .await?;
            list(accounts, &globals)?;
        }
        AccountCommand::Delete { target } => {
            let client = globals.client()?;
            client
                .accounts()
                .delete(&target.resource, &target.account)
                .await?;
            output::print(&format!("Deleted account {target}.\n"))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn row(account: Account) -> AccountRow {
    AccountRow {
        access_command: access_command(&account.resource, &account.name),
        account,
    }
}

fn list(accounts: Vec<Account>, globals: &Globals) -> anyhow::Result<()> {
    if globals.json() {
        return output::print_json(&accounts.into_iter().map(row).collect::<Vec<_>>());
    }
    let mut table = Table::new(&["ACCOUNT", "DESCRIPTION", "MAX DURATION", "ACCESS"]);
    for account in accounts {
        table.row(vec![
            format!("{}/{}", account.resource, account.name),
            output::or_dash(account.description.as_deref()),
            output::duration(Duration::from_secs(account.max_duration_secs)),
            access_command(&account.resource, &account.name),
        ]);
    }
    table.print("No accounts found.")
}
