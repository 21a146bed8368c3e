//! The CLI's KMS credential from single sign-on: a short-lived access token (`kmss_…`, the
//! provider's `credential_ttl_secs`) and a single-use refresh token (`kmsr_…`), kept as hashes.
//! A refresh goes through the provider with the refresh token it gave KMS (sealed, never handed
//! out): when the provider no longer honours the person, the refresh stops and their sessions
//! end; otherwise their roles follow the groups in the new ID token.
//!
//! The CLI gets a credential three ways: exchanging the one-time code its loopback listener
//! received (with its PKCE verifier), polling a device authorization grant (`device.rs`), or
//! refreshing.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::signin::{challenge_of, checked_claims, person, token_endpoint, CliLoopback, SignedIn};
use super::{SsoError, EXCHANGE_TTL};
use crate::kms::api::{PersonIdentity, SsoCredential, SSO_ACCESS_PREFIX, SSO_REFRESH_PREFIX};
use crate::secret::Secret;
use crate::server::edge::state::{now, AppState};
use crate::server::lifecycle::ending::end_sessions;
use crate::server::store::crypto::issue_token;
use crate::server::store::{
    ActiveSessions, NewSsoCredential, PendingKind, SsoCredentialRecord, SsoProviderRecord,
    TokenHash, UserRecord,
};
use crate::session::EndCause;

/// What a finished browser sign-in leaves for the CLI's exchange.
#[derive(Serialize, Deserialize)]
struct ExchangePending {
    provider_id: String,
    user_id: String,
    identity: PersonIdentity,
    challenge: String,
    provider_refresh: Option<String>,
}

pub(super) fn json<T: Serialize>(value: &T) -> Result<Secret, SsoError> {
    serde_json::to_string(value)
        .map(Secret::new)
        .map_err(|e| SsoError::Internal(e.to_string()))
}

pub(super) fn unjson<T: for<'de> Deserialize<'de>>(data: &Secret) -> Result<T, SsoError> {
    serde_json::from_str(data.expose())
        .map_err(|e| SsoError::Internal(format!("a pending sign-in is unreadable: {e}")))
}

/// After a browser sign-in the CLI began: a one-time code for its loopback listener.
pub(crate) async fn exchange_code(
    state: &AppState,
    signed_in: &SignedIn,
    cli: &CliLoopback,
) -> Result<Secret, SsoError> {
    let code = Secret::random(32).map_err(|e| SsoError::Internal(e.to_string()))?;
    let pending = ExchangePending {
        provider_id: signed_in.provider.id.clone(),
        user_id: signed_in.user.id.clone(),
        identity: signed_in.identity.clone(),
        challenge: cli.challenge.clone(),
        provider_refresh: signed_in
            .provider_refresh
            .as_ref()
            .map(|t| t.expose().to_owned()),
    };
    state
        .store
        .put_pending(
            &TokenHash::of(code.expose()),
            PendingKind::Exchange,
            &json(&pending)?,
            now() + EXCHANGE_TTL,
        )
        .await?;
    Ok(code)
}

/// `POST /v1/sso/exchange`: the code and the verifier whose challenge began the sign-in.
pub(crate) async fn exchange(
    state: &AppState,
    code: &Secret,
    verifier: &Secret,
) -> Result<SsoCredential, SsoError> {
    let data = state
        .store
        .take_pending(&TokenHash::of(code.expose()), PendingKind::Exchange, now())
        .await?
        .ok_or_else(|| {
            SsoError::Unauthenticated(
                "this sign-in code is unknown, expired or already used; run kms-pam login --sso again"
                    .to_owned(),
            )
        })?;
    let pending: ExchangePending = unjson(&data)?;
    if challenge_of(verifier.expose()) != pending.challenge {
        return Err(SsoError::Unauthenticated(
            "the PKCE verifier does not match this sign-in; run kms-pam login --sso again"
                .to_owned(),
        ));
    }
    let provider = state.store.sso_provider_by_id(&pending.provider_id).await?;
    let user = state.store.sso_user(&pending.user_id).await?;
    issue(
        state,
        &provider,
        &user,
        &pending.identity,
        pending.provider_refresh.map(Secret::new),
    )
    .await
}

/// Stores and returns a new credential.
pub(crate) async fn issue(
    state: &AppState,
    provider: &SsoProviderRecord,
    user: &UserRecord,
    identity: &PersonIdentity,
    provider_refresh: Option<Secret>,
) -> Result<SsoCredential, SsoError> {
    let (credential, new) = mint(provider, user, identity, provider_refresh)?;
    state.store.create_sso_credential(new).await?;
    tracing::info!(user = %user.name, provider = %provider.name, "single sign-on credential issued");
    Ok(credential)
}

/// New tokens for `user`: the credential the CLI gets, and what the store keeps of it.
fn mint(
    provider: &SsoProviderRecord,
    user: &UserRecord,
    identity: &PersonIdentity,
    provider_refresh: Option<Secret>,
) -> Result<(SsoCredential, NewSsoCredential), SsoError> {
    let (access, access_hash) = issue_token(SSO_ACCESS_PREFIX)?;
    let (refresh, refresh_hash) = issue_token(SSO_REFRESH_PREFIX)?;
    let expires_at = now() + Duration::from_secs(provider.settings.credential_ttl_secs);
    let kept = NewSsoCredential {
        user_id: user.id.clone(),
        provider_id: provider.id.clone(),
        issuer: identity.issuer.clone(),
        subject: identity.subject.clone(),
        access: access_hash,
        access_expires_at: expires_at,
        refresh: refresh_hash,
        provider_refresh,
        now: now(),
    };
    let credential = SsoCredential {
        access_token: access,
        expires_at,
        refresh_token: refresh,
        provider: provider.name.clone(),
        user: user.name.clone(),
        admin: user.admin,
        identity: identity.clone(),
    };
    Ok((credential, kept))
}

/// `POST /v1/sso/refresh`: a new credential for a refresh token, if the provider still honours
/// the person (their roles then follow the groups the provider gives now).
pub(crate) async fn refresh(state: &AppState, token: &Secret) -> Result<SsoCredential, SsoError> {
    let old = TokenHash::of(token.expose());
    let unknown = || {
        SsoError::Unauthenticated(
            "this refresh token is unknown, used or revoked; run kms-pam login --sso".to_owned(),
        )
    };
    let credential = match state.store.sso_refresh(&old).await {
        Ok(credential) if !credential.revoked => credential,
        Ok(_) | Err(crate::server::store::StoreError::NotFound(_)) => return Err(unknown()),
        Err(e) => return Err(e.into()),
    };
    let provider = state
        .store
        .sso_provider_by_id(&credential.provider_id)
        .await?;
    let user = state.store.sso_user(&credential.user_id).await?;
    if user.disabled {
        return Err(SsoError::Unauthenticated(format!(
            "user {} is disabled in KMS",
            user.name
        )));
    }
    let Some(provider_refresh) = credential.provider_refresh.clone() else {
        return Err(SsoError::Unauthenticated(format!(
            "provider {} gave KMS no refresh token (add the offline_access scope); run kms-pam \
             login --sso again",
            provider.name
        )));
    };
    // One refresh at a time: the KMS refresh token is claimed before the provider is asked, so
    // two commands refreshing together do not both present the provider's refresh token (a
    // provider that rotates refresh tokens takes the second use for a theft and revokes the
    // grant). The loser is told the token was used; the CLI then finds the winner's.
    let claim = Secret::random(32).map_err(|e| SsoError::Internal(e.to_string()))?;
    let claim = TokenHash::of(&format!("refresh-claim:{}", claim.expose()));
    if !state
        .store
        .swap_sso_refresh(&credential.id, &old, &claim)
        .await?
    {
        return Err(unknown());
    }
    let renewed = renew(
        state,
        &provider,
        user,
        &credential,
        &provider_refresh,
        &claim,
    )
    .await;
    match &renewed {
        Ok(_) | Err(SsoError::Unauthenticated(_)) => {}
        // Nothing was decided (the provider is down, its answer unusable): the old refresh token
        // works again.
        Err(_) => {
            let _ = state
                .store
                .swap_sso_refresh(&credential.id, &claim, &old)
                .await;
        }
    }
    renewed
}

/// The provider's half of a refresh whose KMS refresh token is claimed (`claim`): the provider
/// refreshes, the person's roles follow the new ID token's groups, and the credential gets new
/// tokens. A provider that refuses signs the person out.
async fn renew(
    state: &AppState,
    provider: &SsoProviderRecord,
    user: UserRecord,
    credential: &SsoCredentialRecord,
    provider_refresh: &Secret,
    claim: &TokenHash,
) -> Result<SsoCredential, SsoError> {
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", provider_refresh.expose()),
    ];
    let answer = match token_endpoint(state, provider, &form).await {
        Ok(answer) => answer,
        Err(refused @ SsoError::Refused { .. }) => {
            // The provider no longer honours the person (disabled, signed out, grant revoked):
            // the credential is revoked and what it opened ends.
            offboard(state, provider, &user, &credential.id).await?;
            return Err(SsoError::Unauthenticated(format!(
                "provider {} no longer accepts your sign-in ({refused}); sign in again with kms-pam login --sso",
                provider.name
            )));
        }
        Err(e) => return Err(e),
    };
    let (user, identity) = match answer.id_token {
        Some(_) => {
            let claims = checked_claims(state, provider, &answer, None).await?;
            if claims.subject != credential.subject {
                return Err(SsoError::Provider(format!(
                    "{} refreshed a token for another subject",
                    provider.issuer
                )));
            }
            person(state, provider, &claims).await?
        }
        None => {
            let identity = stored_identity(
                state,
                &credential.user_id,
                &credential.issuer,
                &credential.subject,
            )
            .await?;
            (user, identity)
        }
    };
    let provider_refresh = answer.refresh_token.map(Secret::new);
    let (renewed, kept) = mint(provider, &user, &identity, provider_refresh)?;
    state
        .store
        .renew_sso_credential(&credential.id, claim, &kept)
        .await
        .map_err(|_| {
            SsoError::Unauthenticated(
                "this single sign-on login was revoked while it was refreshed; run kms-pam login --sso"
                    .to_owned(),
            )
        })?;
    tracing::info!(user = %user.name, provider = %provider.name, "single sign-on credential refreshed");
    Ok(renewed)
}

async fn stored_identity(
    state: &AppState,
    user_id: &str,
    issuer: &str,
    subject: &str,
) -> Result<PersonIdentity, SsoError> {
    state
        .store
        .identities_of(user_id)
        .await?
        .into_iter()
        .map(|record| record.identity)
        .find(|identity| identity.issuer == issuer && identity.subject == subject)
        .ok_or_else(|| SsoError::Unauthenticated("this identity is no longer linked".to_owned()))
}

/// The provider refused the person: their credential is revoked and their sessions end.
async fn offboard(
    state: &AppState,
    provider: &SsoProviderRecord,
    user: &UserRecord,
    credential_id: &str,
) -> Result<(), SsoError> {
    state
        .store
        .revoke_sso_credential(credential_id, now())
        .await?;
    let which = ActiveSessions {
        user_id: Some(user.id.clone()),
        ..ActiveSessions::default()
    };
    let by = format!("single sign-on ({})", provider.name);
    let ended = end_sessions(state, which, EndCause::TokenRevoked, &by).await?;
    tracing::info!(user = %user.name, provider = %provider.name, sessions_ended = ended,
        "the provider refused a refresh: credential revoked");
    Ok(())
}

/// The person behind a request's bearer token, when it is a single sign-on access token still
/// live at `now`, with their user.
pub(crate) async fn token_person(
    state: &AppState,
    token: &str,
) -> Result<Option<(UserRecord, PersonIdentity)>, SsoError> {
    if !token.starts_with(SSO_ACCESS_PREFIX) {
        return Ok(None);
    }
    let (user, credential) = match state.store.sso_access(&TokenHash::of(token), now()).await {
        Ok(found) => found,
        Err(crate::server::store::StoreError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let identity =
        stored_identity(state, &user.id, &credential.issuer, &credential.subject).await?;
    Ok(Some((user, identity)))
}
