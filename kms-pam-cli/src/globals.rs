//! The flags every command shares: the global ones ([`Globals`]) and the KMS `--url` accepted
//! after a command ([`KmsUrl`]); [`Globals::client`] turns them (and the stored login) into a KMS
//! client.

use std::path::PathBuf;

use anyhow::{bail, Context as _};
use clap::Args;
use kms_pam::kms::client::{KmsClient, KmsClientOptions};
use kms_pam::tls::UpstreamTls;
use kms_pam::Secret;

use crate::config;
use crate::output::OutputFormat;

/// `--url` after a command.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct KmsUrl {
    /// KMS URL (env KMS_PAM_URL); several replicas' URLs separated by commas.
    #[arg(long = "url", id = "kms_url", global = true, value_name = "URL")]
    pub url: Option<String>,
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
    /// How KMS is reached: `--kms-ca`, `--insecure-http`.
    pub reach: Reach,
}

/// How the CLI reaches KMS: the global `--kms-ca FILE` and `--insecure-http`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Reach {
    /// `--kms-ca` / `KMS_PAM_KMS_CA`: the CA bundle of an https:// KMS with a private CA.
    pub kms_ca: Option<PathBuf>,
    /// `--insecure-http`: plain http:// to another host allowed.
    pub insecure_http: bool,
}

impl Reach {
    /// The KMS client's options; reads the CA bundle.
    pub(crate) fn options(&self) -> anyhow::Result<KmsClientOptions> {
        let mut options = KmsClientOptions::new().with_insecure_http(self.insecure_http);
        if let Some(file) = &self.kms_ca {
            let pem = std::fs::read_to_string(file).with_context(|| {
                format!("cannot read the KMS CA bundle --kms-ca {}", file.display())
            })?;
            options = options.with_tls(UpstreamTls::CaBundle(pem));
        }
        Ok(options)
    }

    /// A client of the KMS at `url` as these flags say.
    pub(crate) fn client(&self, url: &str, token: Option<Secret>) -> anyhow::Result<KmsClient> {
        Ok(KmsClient::with_options(url, token, &self.options()?)?)
    }
}

impl Globals {
    /// The global flags as given; an empty value counts as not given.
    pub(crate) fn new(
        url: Option<String>,
        token: Option<String>,
        project: Option<String>,
        output: OutputFormat,
        reach: Reach,
    ) -> Self {
        Self {
            url: non_empty(url),
            token: non_empty(token),
            project: non_empty(project),
            output,
            reach,
        }
    }

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
        let client = self.reach.client(&url, token.map(Secret::new))?;
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
