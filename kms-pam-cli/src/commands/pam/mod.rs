//! `kms-pam pam ...`: resources, accounts, grants, sessions and access.

pub(crate) mod access;
pub(crate) mod account;
pub(crate) mod account_ref;
pub(crate) mod grant;
pub(crate) mod resource;
pub(crate) mod sessions;

use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::globals::Globals;

/// `pam ...`.
#[derive(Debug, Args)]
pub(crate) struct PamArgs {
    /// What to manage.
    #[command(subcommand)]
    pub command: PamCommand,
}

/// The `pam` commands.
#[derive(Debug, Subcommand)]
pub(crate) enum PamCommand {
    /// Kubernetes clusters reachable through a gateway.
    Resource(resource::ResourceArgs),
    /// Service accounts of a resource (their tokens stay in KMS).
    Account(account::AccountArgs),
    /// Who may open sessions for which account.
    Grant(grant::GrantArgs),
    /// Sessions: list, show, terminate.
    Sessions(sessions::SessionsArgs),
    /// Open a session and serve kubectl through it until Ctrl+C (or run one command).
    Access(access::AccessArgs),
}

/// Runs `pam ...`.
pub(crate) async fn run(args: PamArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    match args.command {
        PamCommand::Resource(args) => resource::run(args, globals).await,
        PamCommand::Account(args) => account::run(args, globals).await,
        PamCommand::Grant(args) => grant::run(args, globals).await,
        PamCommand::Sessions(args) => sessions::run(args, globals).await,
        PamCommand::Access(args) => access::run(args, globals).await,
    }
}
