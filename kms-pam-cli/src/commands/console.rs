//! `kms-pam console`: a one-time sign-in link to the web console, opened in the browser.

use std::process::{ExitCode, Stdio};

use clap::Args;

use crate::globals::{Globals, KmsUrl};
use crate::output;

/// `console`.
#[derive(Debug, Args)]
pub(crate) struct ConsoleArgs {
    /// Print the link instead of opening it with xdg-open.
    #[arg(long)]
    no_browser: bool,
    #[command(flatten)]
    kms: KmsUrl,
}

/// Runs `console`.
pub(crate) async fn run(args: ConsoleArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let globals = globals.with(&args.kms);
    let client = globals.client()?;
    let link = client.console().link().await?;
    if !args.no_browser {
        let opened = tokio::process::Command::new("xdg-open")
            .arg(&link)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .is_ok_and(|status| status.success());
        if opened {
            output::print("Opened the console in your browser (the link works once, for 60 s).\n")?;
            return Ok(ExitCode::SUCCESS);
        }
    }
    output::print(&format!(
        "Open this link within 60 s to sign in to the console (it works once):\n{link}\n"
    ))?;
    Ok(ExitCode::SUCCESS)
}
