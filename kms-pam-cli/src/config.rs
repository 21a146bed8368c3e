//! The login file: `$XDG_CONFIG_HOME/kms-pam/config.json` (else `~/.config/kms-pam/config.json`),
//! holding the KMS URL, API token and default PAM project. Mode 0600 in a 0700 directory: it
//! holds a credential.

use std::fmt;
use std::fs;
use std::path::PathBuf;

use anyhow::{bail, Context as _};
use kms_pam::fsutil;
use serde::{Deserialize, Serialize};

/// What `kms-pam login` stores.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Config {
    /// KMS base URL.
    pub url: String,
    /// The user's API token.
    pub token: String,
    /// The PAM project `pam` commands use when none is named (`login --project`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// After `login --sso`: how `token` (a short-lived `kmss_` access token) is renewed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sso: Option<SsoLogin>,
}

/// A single sign-on login: the provider, the KMS refresh token and when the access token ends.
/// Never the provider's own tokens (KMS keeps those).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SsoLogin {
    /// The provider signed in through.
    pub provider: String,
    /// The single-use KMS refresh token (`kmsr_…`).
    pub refresh_token: String,
    /// When the access token stops working (RFC 3339).
    pub expires_at: String,
}

impl fmt::Debug for SsoLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SsoLogin")
            .field("provider", &self.provider)
            .field("refresh_token", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("url", &self.url)
            .field("token", &"[redacted]")
            .field("project", &self.project)
            .field("sso", &self.sso)
            .finish()
    }
}

/// Where the login file lives.
pub(crate) fn path() -> anyhow::Result<PathBuf> {
    let absolute = |var: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    // The XDG spec says relative values are to be ignored.
    if let Some(dir) = absolute("XDG_CONFIG_HOME") {
        return Ok(dir.join("kms-pam").join("config.json"));
    }
    match absolute("HOME") {
        Some(home) => Ok(home.join(".config").join("kms-pam").join("config.json")),
        None => bail!("cannot find where to keep the login: set HOME or XDG_CONFIG_HOME"),
    }
}

/// The stored login, if there is one.
pub(crate) fn load() -> anyhow::Result<Option<Config>> {
    let path = path()?;
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let config = serde_json::from_str(&text)
        .with_context(|| format!("{} is damaged; run `kms-pam login` again", path.display()))?;
    Ok(Some(config))
}

/// Deletes the stored login; returns its path if there was one.
pub(crate) fn forget() -> anyhow::Result<Option<PathBuf>> {
    let path = path()?;
    match fs::remove_file(&path) {
        Ok(()) => Ok(Some(path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot delete {}", path.display())),
    }
}

/// Stores the login, replacing any previous one; returns the file's path.
pub(crate) fn save(config: &Config) -> anyhow::Result<PathBuf> {
    let path = path()?;
    let dir = path.parent().context("the login file has no directory")?;
    fsutil::create_private_dir(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // The directory is ours alone (`kms-pam/`), so an older, wider mode is narrowed.
    fsutil::restrict_dir(dir).with_context(|| format!("cannot restrict {}", dir.display()))?;
    let json = serde_json::to_vec_pretty(config).context("cannot encode the login")?;
    // Replaced through a temporary file and a rename, so a crash never leaves half a file.
    fsutil::write_private(&path, &json)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_token() {
        let config = Config {
            url: "http://kms".into(),
            token: "kmsu_secret".into(),
            project: None,
            sso: Some(SsoLogin {
                provider: "corp".into(),
                refresh_token: "kmsr_secret".into(),
                expires_at: "2026-12-08T10:00:00Z".into(),
            }),
        };
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("kmsu_secret") && !shown.contains("kmsr_secret"),
            "{shown}"
        );
    }
}
