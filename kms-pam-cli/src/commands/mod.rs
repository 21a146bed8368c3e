//! One module per command; [`run`] dispatches the parsed command line to them.

pub(crate) mod completion;
pub(crate) mod console;
pub(crate) mod gateway;
pub(crate) mod login;
pub(crate) mod pam;
pub(crate) mod project;
pub(crate) mod relay;
mod relay_serve;
pub(crate) mod server;
pub(crate) mod sso;
pub(crate) mod sso_login;
pub(crate) mod user;
pub(crate) mod verdict;
pub(crate) mod verify_bundle;
pub(crate) mod whoami;

use std::process::ExitCode;

use crate::cli::{Cli, Command};
use crate::globals::{Globals, Reach};

/// Runs the parsed command line.
pub(crate) async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let reach = Reach {
        kms_ca: cli.kms_ca,
        insecure_http: cli.insecure_http,
    };
    let globals = Globals::new(cli.url, cli.token, cli.project, cli.output, reach);
    // A single sign-on login's access token is short-lived: renewed first when it is about to
    // end, for every command that uses the stored login.
    if cli.command.uses_stored_login() {
        sso_login::refresh_if_due(&globals, false).await?;
    }
    match cli.command {
        Command::Server(args) => server::run_server(args).await,
        Command::Dev(args) => server::run_dev(args).await,
        Command::Login(args) => login::run(args, &globals).await,
        Command::Whoami(args) => whoami::run(args, &globals).await,
        Command::User(args) => user::run(args, &globals).await,
        Command::Gateway(args) => gateway::run(args, &globals).await,
        Command::Project(args) => project::run(args, &globals).await,
        Command::Relay(args) => relay::run(args, &globals).await,
        Command::Pam(args) => pam::run(args, &globals).await,
        Command::Console(args) => console::run(args, &globals).await,
        Command::Sso(args) => sso::run(args, &globals).await,
        Command::VerifyBundle(args) => verify_bundle::run(args, &globals).await,
        Command::Logout => login::logout(),
        Command::Completion { shell } => completion::print(shell),
        Command::Healthcheck { url } => match kms_pam::metrics::healthcheck(&url).await {
            Ok(()) => Ok(std::process::ExitCode::SUCCESS),
            Err(e) => anyhow::bail!("unhealthy: {e}"),
        },
    }
}
