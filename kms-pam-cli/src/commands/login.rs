//! `kms-pam login`: verify a token with `whoami`, then store it with the URL.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::Args;
use kms_pam::kms::api::PrincipalKind;
use kms_pam::kms::client::KmsClient;
use kms_pam::Secret;

use super::Globals;
use crate::cli::KmsUrl;
use crate::config::{self, Config};
use crate::output;

/// `login [--url URL] [--token TOKEN]`; without a token, it is read from standard input.
#[derive(Debug, Args)]
pub(crate) struct LoginArgs {
    #[command(flatten)]
    kms: KmsUrl,
}

/// Runs `login`.
pub(crate) async fn run(args: LoginArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let globals = globals.with(&args.kms);
    let url = match (&globals.url, config::load()?) {
        (Some(url), _) => url.clone(),
        (None, Some(stored)) => stored.url,
        (None, None) => bail!("login needs the KMS URL: kms-pam login --url URL --token TOKEN"),
    };
    let token = match &globals.token {
        Some(token) => token.clone(),
        None => read_token()?,
    };
    let client = KmsClient::new(&url, Some(Secret::new(token.clone())))?;
    let me = client.whoami().await?;
    if me.kind != PrincipalKind::User {
        bail!(
            "that token belongs to {} {:?}, not a user; log in with a user's API token",
            me.kind,
            me.name
        );
    }
    let stored = Config {
        url: client.base_url().to_owned(),
        token,
    };
    let path = config::save(&stored)?;
    if globals.json() {
        output::print_json(&me)?;
    } else {
        let role = if me.admin { " (admin)" } else { "" };
        output::print(&format!(
            "Logged in to {} as {}{role}. Saved to {}.\n",
            stored.url,
            me.name,
            path.display()
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// One line from standard input, so the token need not appear on the command line.
fn read_token() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("API token: ");
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("cannot read the token from standard input")?;
    let token = line.trim().to_owned();
    if token.is_empty() {
        bail!(
            "no token given: pass --token TOKEN, set KMS_PAM_TOKEN, or type it on standard input"
        );
    }
    Ok(token)
}
