//! A sign-in through a provider, from the first redirect to the KMS user it ends with.
//!
//! A browser sign-in (the console's, or the CLI's through its loopback listener) is the
//! authorization code flow with PKCE (S256), a `state` that is spent once and a `nonce` the ID
//! token must carry; what KMS must remember meanwhile is sealed in the store under the state's
//! hash. A headless CLI uses the device authorization grant instead, polled through KMS. Either
//! way the provider's ID token is verified, the person is found by (issuer, subject) — or
//! created, unless the provider requires users to exist first — and their roles follow their
//! groups.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::provider::TokenAnswer;
use super::roles::{apply, roles_for};
use super::verify::{self, Expected, IdClaims};
use super::{SsoError, LOGIN_TTL};
use crate::kms::api::PersonIdentity;
use crate::secret::Secret;
use crate::server::edge::state::{now, AppState};
use crate::server::edge::validate;
use crate::server::store::crypto::issue_token;
use crate::server::store::{
    IdentityRecord, NewUser, PendingKind, SsoProviderRecord, StoreError, TokenHash, UserRecord,
};

/// Where a CLI's loopback listener waits for its code: `http://127.0.0.1:PORT/callback`, and the
/// S256 challenge of the verifier only that CLI knows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CliLoopback {
    /// The listener's port.
    pub(crate) port: u16,
    /// The PKCE challenge the CLI's exchange must answer.
    pub(crate) challenge: String,
}

impl CliLoopback {
    /// Where the browser is sent back to, with `code`.
    pub(crate) fn redirect(&self, code: &str) -> String {
        format!("http://127.0.0.1:{}/callback?code={code}", self.port)
    }
}

/// What a browser sign-in in flight keeps (sealed) under its state's hash.
#[derive(Serialize, Deserialize)]
struct LoginPending {
    provider_id: String,
    verifier: String,
    nonce: String,
    redirect_uri: String,
    cli: Option<CliLoopback>,
    /// The hash of the browser's sign-in cookie: only the browser that began it finishes it.
    browser: String,
}

/// A finished sign-in.
#[derive(Debug)]
pub(crate) struct SignedIn {
    /// The provider.
    pub(crate) provider: SsoProviderRecord,
    /// The KMS user, with the roles their groups give now.
    pub(crate) user: UserRecord,
    /// Who they are at the provider.
    pub(crate) identity: PersonIdentity,
    /// The provider's refresh token, if it issued one (kept sealed, never handed out).
    pub(crate) provider_refresh: Option<Secret>,
    /// The CLI waiting for it, for a browser sign-in the CLI began.
    pub(crate) cli: Option<CliLoopback>,
}

/// The S256 challenge of a PKCE verifier (RFC 7636).
pub(crate) fn challenge_of(verifier: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
}

fn random() -> Result<Secret, SsoError> {
    Secret::random(32).map_err(|e| SsoError::Internal(e.to_string()))
}

/// Starts a browser sign-in through `provider_name`: returns the provider URL to send the
/// browser to. `redirect_uri` is KMS's callback as the browser reaches it; `browser` the value
/// of the browser's sign-in cookie, which the callback must bring back (so a callback link made
/// in another browser signs nobody in here: no login CSRF).
pub(crate) async fn begin(
    state: &AppState,
    provider_name: &str,
    redirect_uri: &str,
    cli: Option<CliLoopback>,
    browser: &str,
) -> Result<String, SsoError> {
    let provider = known_provider(state, provider_name).await?;
    let (discovery, _) = state.sso.metadata_now(&provider.issuer).await?;
    let (key, verifier, nonce) = (random()?, random()?, random()?);
    let pending = LoginPending {
        provider_id: provider.id.clone(),
        verifier: verifier.expose().to_owned(),
        nonce: nonce.expose().to_owned(),
        redirect_uri: redirect_uri.to_owned(),
        cli,
        browser: TokenHash::of(browser).as_str().to_owned(),
    };
    let data = serde_json::to_string(&pending).map_err(|e| SsoError::Internal(e.to_string()))?;
    state
        .store
        .put_pending(
            &TokenHash::of(key.expose()),
            PendingKind::Login,
            &Secret::new(data),
            now() + LOGIN_TTL,
        )
        .await?;
    let mut url = url::Url::parse(&discovery.authorization_endpoint).map_err(|e| {
        SsoError::Provider(format!(
            "{}: bad authorization endpoint: {e}",
            provider.issuer
        ))
    })?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &provider.client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", &provider.settings.scopes.join(" "))
        .append_pair("state", key.expose())
        .append_pair("nonce", nonce.expose())
        .append_pair("code_challenge", &challenge_of(verifier.expose()))
        .append_pair("code_challenge_method", "S256");
    Ok(url.into())
}

/// Finishes a browser sign-in at KMS's callback: spends the state, checks the browser is the one
/// that began it, exchanges the code, verifies the ID token, finds or creates the person and
/// applies their roles. Nothing is created when any step fails.
pub(crate) async fn finish(
    state: &AppState,
    key: &str,
    code: &str,
    browser: Option<&str>,
) -> Result<SignedIn, SsoError> {
    let data = state
        .store
        .take_pending(&TokenHash::of(key), PendingKind::Login, now())
        .await?
        .ok_or_else(|| {
            SsoError::Invalid(
                "this sign-in is unknown, expired or already finished (state); start again"
                    .to_owned(),
            )
        })?;
    let pending: LoginPending = serde_json::from_str(data.expose())
        .map_err(|e| SsoError::Internal(format!("a pending sign-in is unreadable: {e}")))?;
    if browser.map(|b| TokenHash::of(b).as_str().to_owned()) != Some(pending.browser.clone()) {
        return Err(SsoError::Invalid(
            "this sign-in was started in another browser (or its cookie was lost); start again \
             from the sign-in page"
                .to_owned(),
        ));
    }
    let provider = state.store.sso_provider_by_id(&pending.provider_id).await?;
    let answer = token_endpoint(
        state,
        &provider,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &pending.redirect_uri),
            ("code_verifier", &pending.verifier),
        ],
    )
    .await?;
    let claims = checked_claims(state, &provider, &answer, Some(&pending.nonce)).await?;
    let (user, identity) = person(state, &provider, &claims).await?;
    Ok(SignedIn {
        provider,
        user,
        identity,
        provider_refresh: answer.refresh_token.map(Secret::new),
        cli: pending.cli,
    })
}

/// Spends a browser sign-in's state without finishing it (the provider refused the person):
/// no code is exchanged, and the state can no longer be finished.
pub(crate) async fn abandon(state: &AppState, key: &str) -> Result<(), SsoError> {
    state
        .store
        .take_pending(&TokenHash::of(key), PendingKind::Login, now())
        .await?;
    Ok(())
}

/// Posts `form` to `provider`'s token endpoint as KMS's client.
pub(crate) async fn token_endpoint(
    state: &AppState,
    provider: &SsoProviderRecord,
    form: &[(&str, &str)],
) -> Result<TokenAnswer, SsoError> {
    let client = (provider.client_id.as_str(), &provider.client_secret);
    state.sso.token(&provider.issuer, client, form).await
}

/// The provider named `name`, or the refusal a person understands.
pub(crate) async fn known_provider(
    state: &AppState,
    name: &str,
) -> Result<SsoProviderRecord, SsoError> {
    match state.store.sso_provider(name).await {
        Ok(provider) => Ok(provider),
        Err(StoreError::NotFound(_)) => Err(SsoError::Invalid(format!(
            "no single sign-on provider is named {name:?}"
        ))),
        Err(e) => Err(e.into()),
    }
}

/// The verified claims of a token answer's ID token (the keys fetched again once when it names
/// a key not seen yet).
pub(crate) async fn checked_claims(
    state: &AppState,
    provider: &SsoProviderRecord,
    answer: &TokenAnswer,
    nonce: Option<&str>,
) -> Result<IdClaims, SsoError> {
    let token = answer.id_token.as_deref().ok_or_else(|| {
        SsoError::Provider(format!(
            "{} returned no ID token (is the `openid` scope configured?)",
            provider.issuer
        ))
    })?;
    let expected = Expected {
        issuer: &provider.issuer,
        client_id: &provider.client_id,
        nonce,
        groups_claim: &provider.settings.groups_claim,
    };
    let (_, mut keys) = state.sso.metadata(&provider.issuer).await?;
    if verify::names_unknown_key(token, &keys) {
        keys = state.sso.fresh_keys(&provider.issuer).await?;
    }
    Ok(verify::id_token(token, &keys, expected)?)
}

/// The KMS user of a verified person, found, linked or created, with their identity saved and
/// their roles following their groups.
pub(crate) async fn person(
    state: &AppState,
    provider: &SsoProviderRecord,
    claims: &IdClaims,
) -> Result<(UserRecord, PersonIdentity), SsoError> {
    let identity = PersonIdentity {
        issuer: provider.issuer.clone(),
        subject: claims.subject.clone(),
        email: claims.email.clone(),
        name: claims.name.clone(),
    };
    let user = match state
        .store
        .identity_user(&identity.issuer, &identity.subject)
        .await?
    {
        Some(user) => user,
        None if provider.settings.require_existing_users => existing_user(state, claims).await?,
        None => new_user(state, claims).await?,
    };
    if user.disabled {
        return Err(SsoError::Denied(format!(
            "user {} is disabled in KMS; an organisation administrator can enable it again",
            user.name
        )));
    }
    state
        .store
        .save_identity(&IdentityRecord {
            user_id: user.id.clone(),
            identity: identity.clone(),
            groups: claims.groups.clone(),
            last_seen_at: now(),
        })
        .await?;
    let user = if provider.settings.rules.is_empty() {
        user
    } else {
        let wanted = roles_for(&provider.settings.rules, &claims.groups);
        let by = format!("single sign-on ({})", provider.name);
        apply(state, &user, &wanted, &by).await?
    };
    Ok((user, identity))
}

/// The user name a person gets: their `preferred_username` if it is a valid name, else their
/// email's local part made one.
pub(crate) fn name_for(claims: &IdClaims) -> Option<String> {
    let valid = |name: &str| validate::name("user", name).is_ok();
    if let Some(name) = claims.preferred_username.as_deref().filter(|n| valid(n)) {
        return Some(name.to_owned());
    }
    let local = claims.email.as_deref()?.split('@').next()?;
    let name: String = local
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let name = name.trim_start_matches(['-', '_', '.']).to_owned();
    valid(&name).then_some(name)
}

/// The user an administrator created for this person (by [`name_for`]), unless it is already
/// someone else's identity.
async fn existing_user(state: &AppState, claims: &IdClaims) -> Result<UserRecord, SsoError> {
    let refused = |name: &str| {
        SsoError::Denied(format!(
            "no KMS user {name} exists and this provider requires users to be created first; \
             ask an organisation administrator to run: kms-pam user create {name}"
        ))
    };
    if !claims.email_verified {
        return Err(SsoError::Denied(
            "this provider requires users to be created first, and KMS links a person to one \
             only with an email the provider verified; yours is not (email_verified is false)"
                .to_owned(),
        ));
    }
    let Some(name) = name_for(claims) else {
        return Err(SsoError::Denied(
            "this provider requires users to be created first, and your identity gives no user \
             name (no valid preferred_username, no email); ask an organisation administrator"
                .to_owned(),
        ));
    };
    let user = match state.store.user_by_name(&name).await {
        Ok(user) => user,
        Err(StoreError::NotFound(_)) => return Err(refused(&name)),
        Err(e) => return Err(e.into()),
    };
    if !state.store.identities_of(&user.id).await?.is_empty() {
        return Err(SsoError::Denied(format!(
            "KMS user {name} is already linked to another identity"
        )));
    }
    Ok(user)
}

/// A new user for this person: [`name_for`], with `-2`, `-3`, … when the name is taken.
async fn new_user(state: &AppState, claims: &IdClaims) -> Result<UserRecord, SsoError> {
    let base = name_for(claims).unwrap_or_else(|| "sso-user".to_owned());
    // The user has an API token nobody knows: they sign in through their provider.
    let (_, token) = issue_token(crate::kms::api::USER_TOKEN_PREFIX)?;
    for n in 1..=20 {
        let name = if n == 1 {
            base.clone()
        } else {
            format!("{}-{n}", base.chars().take(58).collect::<String>())
        };
        let created = state
            .store
            .create_user(NewUser {
                name: name.clone(),
                admin: false,
                token: token.clone(),
                now: now(),
            })
            .await;
        match created {
            Ok(user) => {
                tracing::info!(user = %user.name, "user created at first single sign-on");
                return Ok(user);
            }
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(SsoError::Denied(format!(
        "no free user name for {base}; ask an organisation administrator"
    )))
}
