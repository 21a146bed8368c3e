//! Single sign-on (docs/sso.md): organisation administrators manage providers (the client
//! secret goes in, never out); anybody may ask which providers there are; the CLI trades a
//! loopback code, a device sign-in or a refresh token for a KMS credential.

use std::time::Duration;

use axum::extract::State;
use axum::Json;
use http::StatusCode;

use crate::kms::api::{
    CreateSsoProvider, DevicePoll, DeviceSignIn, PollDeviceSignIn, RefreshSso, SsoCredential,
    SsoExchange, SsoProvider, SsoProviderNames, StartDeviceSignIn,
};
use crate::server::edge::auth::AdminUser;
use crate::server::edge::error::ApiError;
use crate::server::edge::extract::{ApiJson, ApiPath};
use crate::server::edge::paths::NamePath;
use crate::server::edge::state::{now, AppState};
use crate::server::edge::validate;
use crate::server::sso::{credentials, device};
use crate::server::sso::{DEFAULT_CREDENTIAL_TTL_SECS, DEFAULT_SCOPES};
use crate::server::store::{NewSsoProvider, ProviderSettings, SsoProviderRecord, StoreError};

/// Longest CLI credential an administrator may set: a day (the refresh keeps a person signed in
/// longer, as long as the provider agrees).
const MAX_CREDENTIAL_TTL: Duration = Duration::from_secs(24 * 3600);

/// A provider as administrators read it.
pub(crate) fn view(record: &SsoProviderRecord) -> SsoProvider {
    SsoProvider {
        name: record.name.clone(),
        issuer: record.issuer.clone(),
        client_id: record.client_id.clone(),
        scopes: record.settings.scopes.clone(),
        groups_claim: record.settings.groups_claim.clone(),
        rules: record.settings.rules.clone(),
        require_existing_users: record.settings.require_existing_users,
        credential_ttl_secs: record.settings.credential_ttl_secs,
        created_at: record.created_at,
    }
}

/// An issuer KMS may trust: `https://`, or `http://` on a loopback address (a provider on the
/// same host, tests).
pub(crate) fn check_issuer(issuer: &str) -> Result<(), ApiError> {
    let url = url::Url::parse(issuer)
        .map_err(|e| ApiError::invalid(format!("issuer {issuer:?} is not a URL: {e}")))?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name == "localhost",
        None => false,
    };
    let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && loopback);
    if !scheme_ok || url.query().is_some() || url.fragment().is_some() || !url.username().is_empty()
    {
        return Err(ApiError::invalid(format!(
            "issuer {issuer:?} must be an https:// URL without query or fragment (http:// only \
             on a loopback address)"
        )));
    }
    Ok(())
}

/// `POST /v1/sso/providers`.
pub(crate) async fn create(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    ApiJson(body): ApiJson<CreateSsoProvider>,
) -> Result<(StatusCode, Json<SsoProvider>), ApiError> {
    validate::name("provider", &body.name)?;
    check_issuer(&body.issuer)?;
    if body.client_id.is_empty() || body.client_id.len() > 255 {
        return Err(ApiError::invalid("client_id must be 1-255 characters"));
    }
    if body.client_secret.is_empty() || body.client_secret.expose().len() > 4096 {
        return Err(ApiError::invalid("client_secret must be 1-4096 characters"));
    }
    let scopes = body
        .scopes
        .unwrap_or_else(|| DEFAULT_SCOPES.iter().map(|s| (*s).to_owned()).collect());
    if !scopes.iter().any(|s| s == "openid") {
        return Err(ApiError::invalid("scopes must include openid"));
    }
    if scopes
        .iter()
        .any(|s| s.is_empty() || s.contains(char::is_whitespace))
    {
        return Err(ApiError::invalid("a scope is empty or contains a space"));
    }
    let groups_claim = body.groups_claim.unwrap_or_else(|| "groups".to_owned());
    if groups_claim.is_empty() || groups_claim.len() > 255 {
        return Err(ApiError::invalid("groups_claim must be 1-255 characters"));
    }
    for rule in &body.rules {
        if let crate::kms::api::RoleTarget::Project { project, role } = &rule.target {
            if *role == crate::kms::api::ProjectRole::Unknown {
                return Err(ApiError::invalid(
                    "a rule's role must be admin, member or auditor",
                ));
            }
            state.store.project(project).await.map_err(|e| match e {
                StoreError::NotFound(_) => {
                    ApiError::invalid(format!("rule {rule}: project {project} does not exist"))
                }
                other => other.into(),
            })?;
        }
    }
    let ttl = body
        .credential_ttl_secs
        .unwrap_or(DEFAULT_CREDENTIAL_TTL_SECS);
    if ttl < 60 || ttl > MAX_CREDENTIAL_TTL.as_secs() {
        return Err(ApiError::invalid(
            "credential_ttl_secs must be between 60 and 86400 (a minute to a day)",
        ));
    }
    let record = state
        .store
        .create_sso_provider(NewSsoProvider {
            name: body.name,
            issuer: body.issuer,
            client_id: body.client_id,
            client_secret: body.client_secret,
            settings: ProviderSettings {
                scopes,
                groups_claim,
                rules: body.rules,
                require_existing_users: body.require_existing_users,
                credential_ttl_secs: ttl,
            },
            now: now(),
        })
        .await?;
    tracing::info!(by = %admin.name, provider = %record.name, issuer = %record.issuer, "single sign-on provider created");
    Ok((StatusCode::CREATED, Json(view(&record))))
}

/// `GET /v1/sso/providers`.
pub(crate) async fn list(
    State(state): State<AppState>,
    AdminUser(_): AdminUser,
) -> Result<Json<Vec<SsoProvider>>, ApiError> {
    let providers = state.store.sso_providers().await?;
    Ok(Json(providers.iter().map(view).collect()))
}

/// `DELETE /v1/sso/providers/{name}`: people can no longer sign in through it, and the CLI
/// credentials it issued stop working.
pub(crate) async fn delete(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    ApiPath(NamePath { name }): ApiPath<NamePath>,
) -> Result<StatusCode, ApiError> {
    state.store.delete_sso_provider(&name).await?;
    tracing::info!(by = %admin.name, provider = %name, "single sign-on provider deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/sso/providers/names`: unauthenticated, for sign-in pages and `login --sso`.
pub(crate) async fn names(
    State(state): State<AppState>,
) -> Result<Json<SsoProviderNames>, ApiError> {
    let providers = state.store.sso_providers().await?;
    Ok(Json(SsoProviderNames {
        providers: providers.into_iter().map(|p| p.name).collect(),
    }))
}

/// `POST /v1/sso/exchange`.
pub(crate) async fn exchange(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SsoExchange>,
) -> Result<Json<SsoCredential>, ApiError> {
    Ok(Json(
        credentials::exchange(&state, &body.code, &body.verifier).await?,
    ))
}

/// `POST /v1/sso/device`.
pub(crate) async fn start_device(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<StartDeviceSignIn>,
) -> Result<Json<DeviceSignIn>, ApiError> {
    Ok(Json(device::start_device(&state, &body.provider).await?))
}

/// `POST /v1/sso/device/poll`.
pub(crate) async fn poll_device(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<PollDeviceSignIn>,
) -> Result<Json<DevicePoll>, ApiError> {
    Ok(Json(device::poll_device(&state, &body.handle).await?))
}

/// `POST /v1/sso/refresh`.
pub(crate) async fn refresh(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshSso>,
) -> Result<Json<SsoCredential>, ApiError> {
    Ok(Json(
        credentials::refresh(&state, &body.refresh_token).await?,
    ))
}
