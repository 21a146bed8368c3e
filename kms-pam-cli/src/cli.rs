//! The command line (docs/cli.md), parsed with clap.
//!
//! `--url` is the KMS URL everywhere except in `pam resource create`, where docs/cli.md gives it to
//! the API server. So the KMS `--url` is not one global flag: it is accepted before any command
//! (with `KMS_PAM_URL`), and after each command that has no `--url` of its own.

use clap::{Parser, Subcommand};

use crate::commands::{
    console, gateway, login, pam, project, relay, server, sso, user, verify_bundle, whoami,
};
use crate::output::OutputFormat;

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// For people: one line per event (colours only on a terminal).
    Text,
    /// For machines: one JSON object per line.
    Json,
}

/// Just-in-time, audited kubectl access to Kubernetes clusters.
#[derive(Debug, Parser)]
#[command(name = "kms-pam", version, propagate_version = true)]
pub(crate) struct Cli {
    /// KMS URL (also accepted after most commands); several replicas' URLs separated by commas
    /// (failover: the next is used when one cannot be reached).
    #[arg(long = "url", env = "KMS_PAM_URL", value_name = "URL")]
    pub url: Option<String>,
    /// API token (default: the one stored by `kms-pam login`). Prefer `login --token-file` or
    /// KMS_PAM_TOKEN: a token on the command line is visible to other local users.
    #[arg(
        long,
        env = "KMS_PAM_TOKEN",
        global = true,
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// PAM project of `pam` commands (default: the one stored by `login --project`, else
    /// `default`).
    #[arg(long, env = "KMS_PAM_PROJECT", global = true, value_name = "NAME")]
    pub project: Option<String>,
    /// Trust this CA bundle (PEM) for an https:// KMS whose certificate a private CA issued
    /// (default: the system roots).
    #[arg(long, env = "KMS_PAM_KMS_CA", global = true, value_name = "FILE")]
    pub kms_ca: Option<std::path::PathBuf>,
    /// Allow a plain http:// KMS URL to another host than this one (a lab network only): API
    /// tokens and service-account credentials would cross the network in clear. Refused
    /// without it; http:// to 127.0.0.1, ::1 or localhost is always allowed.
    #[arg(long, global = true)]
    pub insecure_http: bool,
    /// Output format of listings.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// Log lines on stderr as text or as JSON lines (one object per line, for a log pipeline).
    #[arg(
        long,
        env = "KMS_PAM_LOG_FORMAT",
        global = true,
        value_enum,
        default_value_t = LogFormat::Text
    )]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the KMS control plane.
    Server(server::ServerArgs),
    /// Run KMS and a gateway in one process, for trying things out.
    Dev(server::DevArgs),
    /// Verify an API token and store it with the URL.
    Login(login::LoginArgs),
    /// Show who the token belongs to.
    Whoami(whoami::WhoamiArgs),
    /// Manage users: create, disable, delete, rotate tokens (organisation admin).
    User(user::UserArgs),
    /// Manage gateways: create, list, show, assign to projects, limit URLs, revoke.
    Gateway(gateway::GatewayArgs),
    /// PAM projects and their members.
    Project(project::ProjectArgs),
    /// Relays, through which gateways that accept no inbound connection are reached: their
    /// certificates.
    Relay(relay::RelayArgs),
    /// Privileged access: resources, accounts, grants, sessions, access.
    Pam(pam::PamArgs),
    /// Sign in to the web console with a one-time link (valid 60 s).
    Console(console::ConsoleArgs),
    /// Single sign-on: the organisation's OpenID Connect providers (organisation admin).
    Sso(sso::SsoArgs),
    /// Verify a session bundle (`pam sessions export`) offline, against keys you trust.
    VerifyBundle(verify_bundle::VerifyBundleArgs),
    /// Forget the stored login (the token and URL `kms-pam login` kept); the token itself stays
    /// valid until it is rotated.
    Logout,
    /// Print a shell completion script: `source <(kms-pam completion bash)`, or
    /// `kms-pam completion zsh > "${fpath[1]}/_kms-pam"`, or
    /// `kms-pam completion fish > ~/.config/fish/completions/kms-pam.fish`.
    Completion {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Exit 0 when URL answers 200: a container healthcheck for `server` (its /healthz) or
    /// `relay serve` (its metrics port), in an image with no shell or curl.
    Healthcheck {
        /// What to ask (plain http).
        #[arg(
            long,
            default_value = "http://127.0.0.1:8080/healthz",
            value_name = "URL"
        )]
        url: String,
    },
}

impl Command {
    /// Whether this command may use the stored login (and so renews a single sign-on one).
    pub(crate) fn uses_stored_login(&self) -> bool {
        matches!(
            self,
            Self::Whoami(_)
                | Self::User(_)
                | Self::Gateway(_)
                | Self::Project(_)
                | Self::Relay(_)
                | Self::Pam(_)
                | Self::Console(_)
                | Self::Sso(_)
        ) && !self.is_long_running_service()
    }

    /// Whether this command runs a service (and should log like one).
    pub(crate) fn is_long_running_service(&self) -> bool {
        match self {
            Self::Server(_) | Self::Dev(_) => true,
            Self::Relay(relay) => relay.command.is_service(),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn resource_create_url_is_the_api_server_and_the_kms_url_comes_first() {
        let cli = Cli::try_parse_from([
            "kms-pam",
            "--url",
            "http://kms:8080",
            "pam",
            "resource",
            "create",
            "kubernetes",
            "prod",
            "--url",
            "https://10.0.0.1:6443",
            "--gateway",
            "gw-1",
            "--ssl-verify=false",
        ])
        .unwrap();
        assert_eq!(cli.url.as_deref(), Some("http://kms:8080"));
        let Command::Pam(pam) = cli.command else {
            panic!("not pam")
        };
        let pam::PamCommand::Resource(resource) = pam.command else {
            panic!("not resource")
        };
        let crate::commands::pam::resource::ResourceCommand::Create(create) = resource.command
        else {
            panic!("not create")
        };
        assert_eq!(create.url, "https://10.0.0.1:6443");
        assert!(!create.ssl_verify);
    }

    #[test]
    fn the_kms_url_is_accepted_after_other_commands() {
        for args in [
            &["kms-pam", "whoami", "--url", "http://kms"][..],
            &[
                "kms-pam",
                "pam",
                "sessions",
                "list",
                "--url",
                "http://kms",
                "-o",
                "json",
            ],
            &[
                "kms-pam",
                "pam",
                "access",
                "prod/admin",
                "--url",
                "http://kms",
            ],
            &["kms-pam", "user", "--url", "http://kms", "list"],
            &[
                "kms-pam", "project", "member", "add", "team-a", "bob", "--role", "auditor",
            ],
            &["kms-pam", "pam", "resource", "list", "--project", "team-a"],
            &["kms-pam", "--project", "team-a", "pam", "sessions", "list"],
            &["kms-pam", "user", "token", "rotate", "bob"],
            &[
                "kms-pam",
                "login",
                "--url",
                "http://kms",
                "--token-file",
                "-",
            ],
        ] {
            Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        }
    }
}
