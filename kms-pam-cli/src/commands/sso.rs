//! `kms-pam sso provider create|list|delete` (organisation admin): the OpenID Connect
//! providers people sign in through (docs/sso.md). The client secret is read from a file (or
//! standard input), never from the command line, and never shown again.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::{Args, Subcommand};
use kms_pam::kms::api::{CreateSsoProvider, GroupRule};

use crate::globals::{Globals, KmsUrl};
use crate::output::{self, Table};
use crate::secret_input::read_secret_file;

/// `sso ...`.
#[derive(Debug, Args)]
pub(crate) struct SsoArgs {
    #[command(flatten)]
    kms: KmsUrl,
    #[command(subcommand)]
    command: SsoCommand,
}

#[derive(Debug, Subcommand)]
enum SsoCommand {
    /// The OpenID Connect providers.
    Provider {
        #[command(subcommand)]
        command: ProviderCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ProviderCommand {
    /// Add a provider. Register KMS's callback URL at it first: KMS_URL/login/sso/callback.
    Create(CreateArgs),
    /// List the providers (never their secrets).
    List,
    /// Delete a provider: nobody signs in through it any more, and the CLI logins it issued
    /// stop working.
    Delete {
        /// Provider name.
        name: String,
    },
}

#[derive(Debug, Args)]
struct CreateArgs {
    /// Provider name, shown as "Sign in with NAME".
    name: String,
    /// Issuer URL, exactly as the provider's discovery document spells it.
    #[arg(long, env = "KMS_PAM_SSO_ISSUER", value_name = "URL")]
    issuer: String,
    /// The client id KMS is registered with at the provider.
    #[arg(long, env = "KMS_PAM_SSO_CLIENT_ID", value_name = "ID")]
    client_id: String,
    /// Read the client secret from FILE (`-`: standard input).
    #[arg(long, env = "KMS_PAM_SSO_CLIENT_SECRET_FILE", value_name = "FILE")]
    client_secret_file: PathBuf,
    /// Scopes to request (repeatable; in the environment, separated by spaces; default: openid
    /// email profile groups offline_access).
    #[arg(
        long = "scope",
        env = "KMS_PAM_SSO_SCOPES",
        value_delimiter = ' ',
        value_name = "SCOPE"
    )]
    scopes: Vec<String>,
    /// The ID-token claim listing a person's groups; a dotted path reaches into objects
    /// (Keycloak's realm_access.roles). Default: groups.
    #[arg(long, env = "KMS_PAM_SSO_GROUPS_CLAIM", value_name = "CLAIM")]
    groups_claim: Option<String>,
    /// A group mapping, GROUP=org-admin or GROUP=PROJECT:ROLE (admin, member, auditor);
    /// repeatable (in the environment, separated by spaces). With any, people's roles follow
    /// their groups at each sign-in and refresh.
    #[arg(long = "map", env = "KMS_PAM_SSO_MAP", value_delimiter = ' ', value_name = "RULE", value_parser = parse_rule)]
    rules: Vec<GroupRule>,
    /// Only people an administrator created first may sign in (matched by their
    /// preferred_username, else their email's local part).
    #[arg(long, env = "KMS_PAM_SSO_REQUIRE_EXISTING_USERS")]
    require_existing_users: bool,
    /// Lifetime of a CLI login's access token before it is refreshed through the provider
    /// (e.g. 8h; 1m to 24h).
    #[arg(long, env = "KMS_PAM_SSO_CREDENTIAL_TTL", value_name = "DURATION", value_parser = kms_pam::time::parse_duration)]
    credential_ttl: Option<std::time::Duration>,
}

fn parse_rule(text: &str) -> Result<GroupRule, String> {
    text.parse()
}

/// Runs `sso ...`.
pub(crate) async fn run(args: SsoArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let globals = globals.with(&args.kms);
    let client = globals.client()?;
    let SsoCommand::Provider { command } = args.command;
    match command {
        ProviderCommand::Create(create) => {
            let secret = read_secret_file(&create.client_secret_file)?;
            if secret.is_empty() {
                bail!(
                    "the client secret file {} is empty",
                    create.client_secret_file.display()
                );
            }
            let body = CreateSsoProvider {
                name: create.name,
                issuer: create.issuer,
                client_id: create.client_id,
                client_secret: secret,
                scopes: (!create.scopes.is_empty()).then_some(create.scopes),
                groups_claim: create.groups_claim,
                rules: create.rules,
                require_existing_users: create.require_existing_users,
                credential_ttl_secs: create.credential_ttl.map(|d| d.as_secs()),
            };
            let provider = client.sso().create(&body).await?;
            if globals.json() {
                output::print_json(&provider)?;
            } else {
                output::print(&format!(
                    "Created single sign-on provider {} ({}). People sign in with: kms-pam login \
                     --url {} --sso, or at the console's sign-in page. Register this callback \
                     URL at the provider: {}/login/sso/callback\n",
                    provider.name,
                    provider.issuer,
                    client.base_url(),
                    client.current_url()
                ))?;
            }
        }
        ProviderCommand::List => {
            let providers = client.sso().list().await?;
            if globals.json() {
                output::print_json(&providers)?;
            } else {
                let mut table = Table::new(&[
                    "NAME",
                    "ISSUER",
                    "CLIENT ID",
                    "GROUP RULES",
                    "NEW USERS",
                    "CLI LOGIN",
                ]);
                for p in providers {
                    let rules: Vec<String> = p.rules.iter().map(ToString::to_string).collect();
                    table.row(vec![
                        p.name,
                        p.issuer,
                        p.client_id,
                        if rules.is_empty() {
                            "-".to_owned()
                        } else {
                            rules.join(" ")
                        },
                        if p.require_existing_users {
                            "must exist"
                        } else {
                            "created"
                        }
                        .to_owned(),
                        kms_pam::time::format_duration(std::time::Duration::from_secs(
                            p.credential_ttl_secs,
                        )),
                    ]);
                }
                table.print("No single sign-on provider.")?;
            }
        }
        ProviderCommand::Delete { name } => {
            client.sso().delete(&name).await?;
            output::print(&format!(
                "Deleted single sign-on provider {name}: its CLI logins stopped working.\n"
            ))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
