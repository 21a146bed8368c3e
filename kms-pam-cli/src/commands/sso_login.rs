//! `kms-pam login --sso`: sign in through the organisation's OpenID provider.
//!
//! With a browser, the CLI listens on a loopback port, opens the browser at KMS's sign-in page
//! for the provider (`$BROWSER` is honoured; the URL is printed too), and trades the one-time
//! code KMS sends back, with its PKCE verifier, for a KMS credential. `--no-browser` uses the
//! device authorization grant: it prints a code to enter at the provider from any device and
//! waits. Either way the login file (0600) holds a short-lived `kmss_` access token and a KMS
//! refresh token, never the provider's tokens; commands renew the access token shortly before it
//! ends ([`refresh_if_due`]), and `kms-pam login --refresh` renews it now.

use std::time::{Duration, SystemTime};

use anyhow::{bail, Context as _};
use kms_pam::access::SessionBroker;
use kms_pam::kms::api::{CreateSession, CreatedSession, DevicePoll, SessionView, SsoCredential};
use kms_pam::kms::client::{KmsClient, KmsError, LoopbackSignIn};
use kms_pam::session::SessionId;
use kms_pam::time::{format_rfc3339, parse_rfc3339};
use kms_pam::Secret;

use crate::config::{self, Config, SsoLogin};
use crate::globals::Globals;
use crate::output;

/// How long the browser sign-in may take.
const BROWSER_WAIT: Duration = Duration::from_secs(300);
/// Commands renew the access token when less than this is left.
const RENEW_BEFORE: Duration = Duration::from_secs(300);

/// The provider to use: the one named, else the only one KMS has.
async fn provider(client: &KmsClient, named: Option<&str>) -> anyhow::Result<String> {
    if let Some(name) = named {
        return Ok(name.to_owned());
    }
    let names = client
        .sso()
        .names()
        .await
        .context("cannot ask KMS which single sign-on providers it has")?;
    match names.as_slice() {
        [] => bail!("KMS has no single sign-on provider; log in with --token-file, or ask an administrator to add one (kms-pam sso provider create)"),
        [one] => Ok(one.clone()),
        many => bail!(
            "KMS has several single sign-on providers; choose one with --provider: {}",
            many.join(", ")
        ),
    }
}

/// Signs in and stores the login. `url`: the KMS.
pub(crate) async fn sign_in(
    globals: &Globals,
    url: &str,
    named: Option<&str>,
    no_browser: bool,
) -> anyhow::Result<()> {
    let client = globals.reach.client(url, None)?;
    let provider = provider(&client, named).await?;
    let credential = if no_browser {
        device(&client, &provider).await?
    } else {
        browser(&client, &provider).await?
    };
    let path = store(&client, credential.clone(), globals.project.clone())?;
    if globals.json() {
        output::print_json(&serde_json::json!({
            "user": credential.user,
            "admin": credential.admin,
            "provider": credential.provider,
            "identity": credential.identity,
            "expires_at": format_rfc3339(credential.expires_at),
        }))?;
    } else {
        let role = if credential.admin { " (admin)" } else { "" };
        output::print(&format!(
            "Logged in to {} as {}{role} through {} ({}). Saved to {}.\n",
            client.base_url(),
            credential.user,
            credential.provider,
            credential.identity,
            path.display()
        ))?;
    }
    Ok(())
}

async fn browser(client: &KmsClient, provider: &str) -> anyhow::Result<SsoCredential> {
    let sign_in = LoopbackSignIn::start().await?;
    let url = sign_in.url(client.current_url(), provider);
    eprintln!("Sign in at: {url}");
    if let Err(e) = webbrowser::open(&url) {
        eprintln!("(could not open a browser: {e}; open the URL above yourself)");
    }
    let code = sign_in.code(BROWSER_WAIT).await?;
    Ok(client.sso().exchange(&code, sign_in.verifier()).await?)
}

async fn device(client: &KmsClient, provider: &str) -> anyhow::Result<SsoCredential> {
    let started = client.sso().start_device(provider).await?;
    eprintln!(
        "To sign in, open {} and enter the code {}",
        started.verification_uri, started.user_code
    );
    if let Some(complete) = &started.verification_uri_complete {
        eprintln!("(or open {complete})");
    }
    let mut interval = Duration::from_secs(started.interval_secs.max(1));
    loop {
        if SystemTime::now() >= started.expires_at {
            bail!("the code expired before the sign-in finished; run kms-pam login --sso --no-browser again");
        }
        tokio::time::sleep(interval).await;
        match client.sso().poll_device(&started.handle).await? {
            DevicePoll::Pending { interval_secs } => {
                interval = Duration::from_secs(interval_secs.max(1));
            }
            DevicePoll::Complete { credential } => return Ok(*credential),
        }
    }
}

/// Writes the login file for `credential`.
fn store(
    client: &KmsClient,
    credential: SsoCredential,
    project: Option<String>,
) -> anyhow::Result<std::path::PathBuf> {
    config::save(&Config {
        url: client.base_url().to_owned(),
        token: credential.access_token.expose().to_owned(),
        project,
        sso: Some(SsoLogin {
            provider: credential.provider,
            refresh_token: credential.refresh_token.expose().to_owned(),
            expires_at: format_rfc3339(credential.expires_at),
        }),
    })
}

/// Renews the stored single sign-on credential when it ends within a few minutes (or now, with
/// `force`). Nothing happens for a token login, or when a token was given on the command line
/// or in the environment. A refresh KMS refuses ends the login with what to do; a KMS that
/// cannot be reached leaves the stored credential as it is.
pub(crate) async fn refresh_if_due(globals: &Globals, force: bool) -> anyhow::Result<bool> {
    if globals.token.is_some() {
        return Ok(false);
    }
    let Some(stored) = config::load()? else {
        if force {
            bail!("not logged in: nothing to refresh; sign in with kms-pam login --sso");
        }
        return Ok(false);
    };
    let Some(sso) = stored.sso.clone() else {
        if force {
            bail!("the stored login is an API token, not single sign-on; nothing to refresh");
        }
        return Ok(false);
    };
    let due =
        parse_rfc3339(&sso.expires_at).is_none_or(|end| end <= SystemTime::now() + RENEW_BEFORE);
    if !due && !force {
        return Ok(false);
    }
    let client = globals.reach.client(&stored.url, None)?;
    let credential = match client
        .sso()
        .refresh(&Secret::new(sso.refresh_token.clone()))
        .await
    {
        Ok(credential) => credential,
        Err(KmsError::Api {
            status: 401,
            message,
            ..
        }) => {
            // Another command may have refreshed it a moment ago: then the file holds its
            // new tokens, and the login goes on.
            let now = config::load()?.and_then(|again| again.sso);
            if now.is_some_and(|again| again.refresh_token != sso.refresh_token) {
                return Ok(true);
            }
            bail!("single sign-on ended: {message}")
        }
        Err(e) if !force && e.connection_failure().is_some() => return Ok(false),
        Err(e) => return Err(e).context("cannot refresh the single sign-on login"),
    };
    store(&client, credential, stored.project)?;
    Ok(true)
}

/// The KMS as `pam access` uses it during a session that may outlive a single sign-on access
/// token: a call refused with 401 takes the token another command renewed in the login file
/// meanwhile, or renews it here, and is made once more. A token login passes through unchanged.
#[derive(Clone)]
pub(crate) struct RenewingBroker {
    /// The client and the token it sends (`None`: not a single sign-on login).
    state: std::sync::Arc<std::sync::Mutex<(KmsClient, Option<String>)>>,
    globals: Globals,
}

impl RenewingBroker {
    /// Wraps `client`, made from `globals`.
    pub(crate) fn new(client: KmsClient, globals: &Globals) -> anyhow::Result<Self> {
        let token = match (&globals.token, config::load()?) {
            (None, Some(stored)) if stored.sso.is_some() => Some(stored.token),
            _ => None,
        };
        Ok(Self {
            state: std::sync::Arc::new(std::sync::Mutex::new((client, token))),
            globals: globals.clone(),
        })
    }

    fn current(&self) -> KmsClient {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .clone()
    }

    /// A client with the login file's token once it differs from the one refused, renewing it
    /// first when no other command did.
    async fn renewed(&self, refused: &KmsError) -> Option<KmsClient> {
        let (client, sent) = self.state.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let sent = sent?;
        if refused.status() != Some(401) {
            return None;
        }
        let token_now = || config::load().ok().flatten().map(|stored| stored.token);
        let mut token = token_now()?;
        if token == sent {
            if let Err(e) = refresh_if_due(&self.globals, true).await {
                tracing::warn!(error = %e, "the single sign-on login could not be renewed");
            }
            // Another command may have won the refresh: its token is in the file either way.
            token = token_now()?;
            if token == sent {
                return None;
            }
        }
        let renewed = client.with_token(Secret::new(token.clone())).ok()?;
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = (renewed.clone(), Some(token));
        Some(renewed)
    }
}

macro_rules! renewing {
    ($self:ident, $call:expr) => {{
        let client = $self.current();
        let first = $call(client).await;
        match first {
            Err(e) => match $self.renewed(&e).await {
                Some(client) => $call(client).await,
                None => Err(e),
            },
            ok => ok,
        }
    }};
}

#[async_trait::async_trait]
impl SessionBroker for RenewingBroker {
    async fn create_session(&self, request: &CreateSession) -> Result<CreatedSession, KmsError> {
        renewing!(self, |c: KmsClient| async move {
            c.create_session(request).await
        })
    }

    async fn end_session(&self, id: &SessionId) -> Result<SessionView, KmsError> {
        renewing!(self, |c: KmsClient| async move { c.end_session(id).await })
    }

    async fn session_status(&self, id: &SessionId) -> Result<SessionView, KmsError> {
        renewing!(
            self,
            |c: KmsClient| async move { c.session_status(id).await }
        )
    }

    async fn record_complete(&self, id: &SessionId) -> Result<bool, KmsError> {
        renewing!(
            self,
            |c: KmsClient| async move { c.record_complete(id).await }
        )
    }
}
