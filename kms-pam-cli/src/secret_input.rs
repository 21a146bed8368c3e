//! Secrets the user hands the CLI: read from a file, from standard input, or typed at the
//! terminal without echo.

use std::io::IsTerminal;

use anyhow::{bail, Context as _};
use kms_pam::Secret;

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
