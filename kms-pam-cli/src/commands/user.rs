//! `kms-pam user create|list` (admin).

use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::Globals;
use crate::cli::KmsUrl;
use crate::output::{self, Table};

/// `user ...`.
#[derive(Debug, Args)]
pub(crate) struct UserArgs {
    #[command(flatten)]
    kms: KmsUrl,
    #[command(subcommand)]
    command: UserCommand,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a user and print its API token (shown only this once).
    Create {
        /// User name.
        name: String,
        /// Make the user an administrator.
        #[arg(long)]
        admin: bool,
    },
    /// List users.
    List,
}

/// Runs `user ...`.
pub(crate) async fn run(args: UserArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let globals = globals.with(&args.kms);
    let client = globals.client()?;
    match args.command {
        UserCommand::Create { name, admin } => {
            let created = client.create_user(&name, admin).await?;
            if globals.json() {
                output::print_json(&created)?;
            } else {
                let role = if created.user.admin {
                    "admin"
                } else {
                    "member"
                };
                output::print(&format!(
                    "Created user {} ({role}). Its API token, shown only this once:\n\n  {}\n\n\
                     Log in with: kms-pam login --url {} --token TOKEN\n",
                    created.user.name,
                    created.token.expose(),
                    client.base_url()
                ))?;
            }
        }
        UserCommand::List => {
            let users = client.list_users().await?;
            if globals.json() {
                output::print_json(&users)?;
            } else {
                let mut table = Table::new(&["NAME", "ROLE", "CREATED"]);
                for user in users {
                    let role = if user.admin { "admin" } else { "member" };
                    table.row(vec![
                        user.name,
                        role.to_owned(),
                        output::time(user.created_at),
                    ]);
                }
                table.print("No users found.")?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
