//! One module per command; [`run`] dispatches and [`Globals`] turns the global flags (and the
//! stored login) into a KMS client.

pub(crate) mod console;
pub(crate) mod gateway;
pub(crate) mod login;
pub(crate) mod pam;
pub(crate) mod project;
pub(crate) mod server;
pub(crate) mod user;
pub(crate) mod verdict;
pub(crate) mod verify_bundle;
pub(crate) mod whoami;

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use kms_pam::kms::client::KmsClient;
use kms_pam::Secret;

use crate::cli::{Cli, Command, KmsUrl};
use crate::config;
use crate::output::OutputFormat;

/// Runs the parsed command line.
pub(crate) async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let globals = Globals {
        url: non_empty(cli.url),
        token: non_empty(cli.token),
        project: non_empty(cli.project),
        output: cli.output,
    };
    match cli.command {
        Command::Server(args) => server::run_server(args).await,
        Command::Dev(args) => server::run_dev(args).await,
        Command::Login(args) => login::run(args, &globals).await,
        Command::Whoami(args) => whoami::run(args, &globals).await,
        Command::User(args) => user::run(args, &globals).await,
        Command::Gateway(args) => gateway::run(args, &globals).await,
        Command::Project(args) => project::run(args, &globals).await,
        Command::Pam(args) => pam::run(args, &globals).await,
        Command::Console(args) => console::run(args, &globals).await,
        Command::VerifyBundle(args) => verify_bundle::run(args, &globals).await,
    }
}

/// The flags every command shares.
#[derive(Clone, Debug)]
pub(crate) struct Globals {
    /// `--url` / `KMS_PAM_URL`.
    pub url: Option<String>,
    /// `--token` / `KMS_PAM_TOKEN`.
    pub token: Option<String>,
    /// `--project` / `KMS_PAM_PROJECT`.
    pub project: Option<String>,
    /// `-o`.
    pub output: OutputFormat,
}

impl Globals {
    /// These flags with a `--url` given after the command taking precedence.
    pub(crate) fn with(&self, kms: &KmsUrl) -> Self {
        Self {
            url: non_empty(kms.url.clone()).or_else(|| self.url.clone()),
            ..self.clone()
        }
    }

    /// Whether `-o json` was asked for.
    pub(crate) fn json(&self) -> bool {
        self.output == OutputFormat::Json
    }

    /// A client for the KMS: URL and token from the flags or environment, else from the login.
    /// The stored token and default project only apply to the URL they were stored for. The
    /// client works in `--project`, else the stored default; with neither, in `default` through
    /// the unprefixed routes (as before projects existed).
    pub(crate) fn client(&self) -> anyhow::Result<KmsClient> {
        let stored = config::load()?;
        let url = match (&self.url, &stored) {
            (Some(url), _) => url.clone(),
            (None, Some(stored)) => stored.url.clone(),
            (None, None) => bail!(
                "no KMS URL: pass --url URL, set KMS_PAM_URL, or run `kms-pam login --url URL --token-file FILE`"
            ),
        };
        let token = match (&self.token, &stored) {
            (Some(token), _) => Some(token.clone()),
            (None, Some(stored)) if same_url(&stored.url, &url) => Some(stored.token.clone()),
            (None, _) => None,
        };
        if token.is_none() {
            bail!(
                "no API token for {url}: run `kms-pam login --token-file FILE`, set \
                 KMS_PAM_TOKEN, or pass --token"
            );
        }
        let stored_project = stored
            .filter(|stored| same_url(&stored.url, &url))
            .and_then(|stored| stored.project);
        let client = KmsClient::new(&url, token.map(Secret::new))?;
        Ok(match self.project.clone().or(stored_project) {
            Some(project) => client.in_project(&project),
            None => client,
        })
    }
}

/// An empty `KMS_PAM_URL=` or `--token ""` means "not given".
fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

/// Whether two KMS URLs (or comma-separated lists of replicas' URLs) are the same, ignoring
/// trailing slashes and spaces around the commas.
fn same_url(a: &str, b: &str) -> bool {
    let urls = |list: &str| -> Vec<String> {
        list.split(',')
            .map(|u| u.trim().trim_end_matches('/').to_owned())
            .collect()
    };
    urls(a) == urls(b)
}

/// Reads a secret from a file, or standard input for `-` (typed at a terminal, without echo),
/// trimming the line break editors add.
pub(crate) fn read_secret_file(path: &std::path::Path) -> anyhow::Result<Secret> {
    let shown = path.display();
    let stdin = std::io::stdin();
    let text = zeroize::Zeroizing::new(if path.as_os_str() == "-" && stdin.is_terminal() {
        read_hidden("Token (not shown): ")?
    } else if path.as_os_str() == "-" {
        std::io::read_to_string(stdin).context("cannot read the token from standard input")?
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read token file {shown}"))?
    });
    let secret = Secret::new(text.trim());
    if secret.is_empty() {
        bail!("token file {shown} is empty");
    }
    Ok(secret)
}

/// One line typed at the terminal after `prompt`, not echoed: a token typed or pasted there
/// must not stay on the screen or in its scrollback.
pub(crate) fn read_hidden(prompt: &str) -> anyhow::Result<String> {
    rpassword::prompt_password(prompt).context("cannot read the token from the terminal")
}

#[cfg(test)]
mod tests {
    use super::same_url;

    #[test]
    fn a_stored_login_matches_the_same_urls_written_differently() {
        assert!(same_url("http://kms:8080/", "http://kms:8080"));
        assert!(same_url(
            "http://a:1/,http://b:2",
            "http://a:1, http://b:2/"
        ));
        assert!(!same_url("http://a:1,http://b:2", "http://b:2,http://a:1"));
        assert!(!same_url("http://a:1,http://b:2", "http://a:1"));
    }
}
