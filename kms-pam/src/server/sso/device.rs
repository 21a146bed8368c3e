//! The device authorization grant (RFC 8628) for a CLI without a browser, run by KMS: KMS asks
//! the provider for a user code, the CLI shows it and polls KMS with a secret handle, KMS polls
//! the provider; the provider's tokens stay in KMS and the CLI gets a KMS credential.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::credentials::{issue, json, unjson};
use super::signin::{checked_claims, known_provider, person, token_endpoint};
use super::SsoError;
use crate::kms::api::{DevicePoll, DeviceSignIn};
use crate::secret::Secret;
use crate::server::edge::state::{now, AppState};
use crate::server::store::{PendingKind, TokenHash};

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// What a device sign-in being polled keeps.
#[derive(Serialize, Deserialize)]
struct DevicePending {
    provider_id: String,
    device_code: String,
    interval: u64,
}

/// `POST /v1/sso/device`: starts a device authorization grant at the provider.
pub(crate) async fn start_device(
    state: &AppState,
    provider_name: &str,
) -> Result<DeviceSignIn, SsoError> {
    let provider = known_provider(state, provider_name).await?;
    let answer = state
        .sso
        .device(
            &provider.issuer,
            (&provider.client_id, &provider.client_secret),
            &provider.settings.scopes.join(" "),
        )
        .await?;
    let handle = Secret::random(32).map_err(|e| SsoError::Internal(e.to_string()))?;
    let interval = answer.interval.unwrap_or(5).clamp(1, 60);
    let expires_at = now() + Duration::from_secs(answer.expires_in.clamp(30, 3600));
    let pending = DevicePending {
        provider_id: provider.id,
        device_code: answer.device_code,
        interval,
    };
    state
        .store
        .put_pending(
            &TokenHash::of(handle.expose()),
            PendingKind::Device,
            &json(&pending)?,
            expires_at,
        )
        .await?;
    Ok(DeviceSignIn {
        handle,
        user_code: answer.user_code,
        verification_uri: answer.verification_uri,
        verification_uri_complete: answer.verification_uri_complete,
        interval_secs: interval,
        expires_at,
    })
}

/// `POST /v1/sso/device/poll`: asks the provider once whether the person finished.
pub(crate) async fn poll_device(state: &AppState, handle: &Secret) -> Result<DevicePoll, SsoError> {
    let key = TokenHash::of(handle.expose());
    let gone = || {
        SsoError::Unauthenticated(
            "this device sign-in is unknown, expired or finished; run kms-pam login --sso --no-browser again"
                .to_owned(),
        )
    };
    let data = state
        .store
        .pending(&key, PendingKind::Device, now())
        .await?
        .ok_or_else(gone)?;
    let pending: DevicePending = unjson(&data)?;
    let provider = state.store.sso_provider_by_id(&pending.provider_id).await?;
    let form = [
        ("grant_type", DEVICE_GRANT),
        ("device_code", pending.device_code.as_str()),
        ("client_id", provider.client_id.as_str()),
    ];
    let answer = token_endpoint(state, &provider, &form).await;
    let answer = match answer {
        Ok(answer) => answer,
        Err(SsoError::Refused { error, .. }) if error == "authorization_pending" => {
            return Ok(DevicePoll::Pending {
                interval_secs: pending.interval,
            })
        }
        Err(SsoError::Refused { error, .. }) if error == "slow_down" => {
            return Ok(DevicePoll::Pending {
                interval_secs: pending.interval + 5,
            })
        }
        Err(refused @ SsoError::Refused { .. }) => {
            state
                .store
                .take_pending(&key, PendingKind::Device, now())
                .await?;
            return Err(refused);
        }
        Err(e) => return Err(e),
    };
    // One poll wins the tokens; a concurrent one finds the handle spent.
    if state
        .store
        .take_pending(&key, PendingKind::Device, now())
        .await?
        .is_none()
    {
        return Err(gone());
    }
    let claims = checked_claims(state, &provider, &answer, None).await?;
    let (user, identity) = person(state, &provider, &claims).await?;
    let credential = issue(
        state,
        &provider,
        &user,
        &identity,
        answer.refresh_token.map(Secret::new),
    )
    .await?;
    Ok(DevicePoll::Complete {
        credential: Box::new(credential),
    })
}
