//! `kms-pam user create|list|disable|enable|delete|token rotate` (organisation admin).

use std::process::ExitCode;

use clap::{Args, Subcommand};
use kms_pam::kms::api::{CreatedUser, User};
use kms_pam::kms::client::KmsClient;

use crate::globals::{Globals, KmsUrl};
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
    /// Create a user and print its API token (shown only this once). A user who is not an
    /// admin joins the project `default` as a member.
    Create {
        /// User name (unique regardless of case).
        name: String,
        /// Make the user an organisation administrator.
        #[arg(long)]
        admin: bool,
    },
    /// List users.
    List,
    /// Refuse the user's token and end their active sessions at once.
    Disable {
        /// User name.
        name: String,
    },
    /// Accept the user's token again.
    Enable {
        /// User name.
        name: String,
    },
    /// Delete the user: their token stops working, their sessions end, their history stays.
    Delete {
        /// User name.
        name: String,
    },
    /// The user's API token.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Give the user a new token (printed once); the old one stops working and their active
    /// sessions end.
    Rotate {
        /// User name.
        name: String,
    },
}

/// Runs `user ...`.
pub(crate) async fn run(args: UserArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let globals = globals.with(&args.kms);
    let client = globals.client()?;
    match args.command {
        UserCommand::Create { name, admin } => {
            let created = client.users().create(&name, admin).await?;
            if globals.json() {
                output::print_json(&created)?;
            } else {
                let role = if created.user.admin {
                    "admin"
                } else {
                    "member"
                };
                let what = format!("Created user {} ({role}).", created.user.name);
                output::print(&token_once(&what, &created, &client))?;
            }
        }
        UserCommand::List => list(&globals, &client).await?,
        UserCommand::Disable { name } => {
            let user = client.users().disable(&name).await?;
            done(
                &globals,
                &user,
                &format!(
                    "Disabled user {}: their token is refused and their sessions were ended.",
                    user.name
                ),
            )?;
        }
        UserCommand::Enable { name } => {
            let user = client.users().enable(&name).await?;
            done(
                &globals,
                &user,
                &format!("Enabled user {}: their token works again.", user.name),
            )?;
        }
        UserCommand::Delete { name } => {
            client.users().delete(&name).await?;
            output::print(&format!(
                "Deleted user {name}: their sessions were ended; their history is kept.\n"
            ))?;
        }
        UserCommand::Token {
            command: TokenCommand::Rotate { name },
        } => {
            let rotated = client.users().rotate_token(&name).await?;
            if globals.json() {
                output::print_json(&rotated)?;
            } else {
                let what = format!(
                    "New API token for {}; the old one no longer works and their sessions were \
                     ended.",
                    rotated.user.name
                );
                output::print(&token_once(&what, &rotated, &client))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `what`, the token shown once, and how to log in with it without putting it on a command
/// line.
fn token_once(what: &str, created: &CreatedUser, client: &KmsClient) -> String {
    format!(
        "{what} Its API token, shown only this once:\n\n  {}\n\n\
         Log in with: kms-pam login --url {} --token-file FILE (or - to paste it on stdin)\n",
        created.token.expose(),
        client.base_url()
    )
}

fn done(globals: &Globals, user: &User, message: &str) -> anyhow::Result<()> {
    if globals.json() {
        output::print_json(user)
    } else {
        output::print(&format!("{message}\n"))
    }
}

async fn list(globals: &Globals, client: &KmsClient) -> anyhow::Result<()> {
    let users = client.users().list().await?;
    if globals.json() {
        return output::print_json(&users);
    }
    let mut table = Table::new(&["NAME", "ROLE", "STATUS", "CREATED"]);
    for user in users {
        let role = if user.admin { "admin" } else { "member" };
        let status = if user.disabled { "disabled" } else { "active" };
        table.row(vec![
            user.name,
            role.to_owned(),
            status.to_owned(),
            output::time(user.created_at),
        ]);
    }
    table.print("No users found.")
}
