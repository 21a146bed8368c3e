//! `kms-pam login`: verify a token with `whoami`, then store it with the URL (and optionally a
//! default PAM project).
//!
//! The token is best given in a file (`--token-file FILE`) or on standard input
//! (`--token-file -`, or no token option at all): then it never appears in the process's command
//! line, which other local users can read in `/proc`. Typed at a terminal, it is not echoed.
//! `--token` and `KMS_PAM_TOKEN` work too.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::Args;
use kms_pam::kms::api::PrincipalKind;
use kms_pam::Secret;

use crate::config::{self, Config};
use crate::globals::{Globals, KmsUrl};
use crate::output;
use crate::secret_input::{read_hidden, read_secret_file};

/// `login [--url URL] [--token-file FILE|-] [--project NAME]`; without a token option, the
/// token is read from standard input.
#[derive(Debug, Args)]
pub(crate) struct LoginArgs {
    #[command(flatten)]
    kms: KmsUrl,
    /// Read the API token from FILE (`-`: standard input) instead of the command line.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Sign in through the organisation's OpenID provider (single sign-on) instead of with an
    /// API token: a browser opens at the provider's sign-in page.
    #[arg(long, conflicts_with = "token_file")]
    sso: bool,
    /// With --sso: the provider to sign in through (default: KMS's only one).
    #[arg(long, requires = "sso", value_name = "NAME")]
    provider: Option<String>,
    /// With --sso, on a machine without a browser: print a code to enter at the provider from
    /// any device (the device authorization grant) and wait.
    #[arg(long, requires = "sso")]
    no_browser: bool,
    /// Renew the stored single sign-on login now (commands renew it by themselves shortly
    /// before it ends); roles follow the groups the provider gives now.
    #[arg(long, conflicts_with_all = ["sso", "token_file"])]
    refresh: bool,
}

/// Runs `login`.
pub(crate) async fn run(args: LoginArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let globals = globals.with(&args.kms);
    if args.refresh {
        super::sso_login::refresh_if_due(&globals, true).await?;
        let me = globals.client()?.whoami().await?;
        output::print(&format!(
            "Refreshed the single sign-on login of {}.\n",
            me.name
        ))?;
        return Ok(ExitCode::SUCCESS);
    }
    let url = match (&globals.url, config::load()?) {
        (Some(url), _) => url.clone(),
        (None, Some(stored)) => stored.url,
        (None, None) => {
            bail!("login needs the KMS URL: kms-pam login --url URL --token-file FILE")
        }
    };
    if args.sso {
        super::sso_login::sign_in(&globals, &url, args.provider.as_deref(), args.no_browser)
            .await?;
        return Ok(ExitCode::SUCCESS);
    }
    let token = match (&args.token_file, &globals.token) {
        (Some(file), _) => read_secret_file(file)?,
        (None, Some(token)) => Secret::new(token.clone()),
        (None, None) => read_token()?,
    };
    let client = globals.reach.client(&url, Some(token.clone()))?;
    let me = client.whoami().await?;
    if me.kind != PrincipalKind::User {
        bail!(
            "that token belongs to {} {:?}, not a user; log in with a user's API token",
            me.kind,
            me.name
        );
    }
    if let Some(project) = &globals.project {
        client
            .projects()
            .get(project)
            .await
            .with_context(|| format!("cannot use project {project} as the default"))?;
    }
    let stored = Config {
        url: client.base_url().to_owned(),
        token: token.expose().to_owned(),
        project: globals.project.clone(),
        sso: None,
    };
    let path = config::save(&stored)?;
    if globals.json() {
        output::print_json(&me)?;
    } else {
        let role = if me.admin { " (admin)" } else { "" };
        let project = stored
            .project
            .as_deref()
            .map(|p| format!(" Default project: {p}."))
            .unwrap_or_default();
        output::print(&format!(
            "Logged in to {} as {}{role}.{project} Saved to {}.\n",
            stored.url,
            me.name,
            path.display()
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// One line from standard input, so the token need not appear on the command line; typed at a
/// terminal, it is not echoed.
fn read_token() -> anyhow::Result<Secret> {
    let stdin = std::io::stdin();
    let mut line = zeroize::Zeroizing::new(String::new());
    if stdin.is_terminal() {
        *line = read_hidden("API token (not shown): ")?;
    } else {
        stdin
            .lock()
            .read_line(&mut line)
            .context("cannot read the token from standard input")?;
    }
    let token = Secret::new(line.trim());
    if token.is_empty() {
        bail!("no token given: use --token-file FILE, set KMS_PAM_TOKEN, or type it on standard input");
    }
    Ok(token)
}

/// Runs `logout`: deletes the stored login.
pub(crate) fn logout() -> anyhow::Result<ExitCode> {
    match config::forget()? {
        Some(path) => eprintln!(
            "Logged out: {} deleted. The token stays valid until it is rotated \
             (kms-pam user token rotate).",
            path.display()
        ),
        None => eprintln!("Not logged in: nothing stored."),
    }
    Ok(ExitCode::SUCCESS)
}
