//! `kms-pam pam ...`: resources, accounts, grants, sessions and access.

pub(crate) mod access;
pub(crate) mod account;
pub(crate) mod grant;
pub(crate) mod resource;
pub(crate) mod sessions;

use std::fmt;
use std::process::ExitCode;
use std::str::FromStr;

use clap::{Args, Subcommand};

use super::Globals;

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

/// `RESOURCE/ACCOUNT`, as every account-level command names its account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AccountRef {
    /// The resource.
    pub resource: String,
    /// The account on it.
    pub account: String,
}

impl FromStr for AccountRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('/') {
            Some((resource, account))
                if !resource.is_empty() && !account.is_empty() && !account.contains('/') =>
            {
                Ok(Self {
                    resource: resource.to_owned(),
                    account: account.to_owned(),
                })
            }
            _ => Err(format!(
                "expected RESOURCE/ACCOUNT (e.g. prod-k8s/admin), got {s:?}"
            )),
        }
    }
}

impl fmt::Display for AccountRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.resource, self.account)
    }
}

/// The command a user runs to get access to an account.
pub(crate) fn access_command(resource: &str, account: &str) -> String {
    format!("kms-pam pam access {resource}/{account}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_references() {
        let parsed: AccountRef = "prod-k8s/admin".parse().unwrap();
        assert_eq!(
            (parsed.resource.as_str(), parsed.account.as_str()),
            ("prod-k8s", "admin")
        );
        assert_eq!(parsed.to_string(), "prod-k8s/admin");
        for bad in ["prod", "/admin", "prod/", "a/b/c", ""] {
            assert!(bad.parse::<AccountRef>().is_err(), "{bad}");
        }
    }
}
