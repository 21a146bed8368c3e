//! Who is calling: the bearer token names a user (`kmsu_…`) or an enrolled gateway (`kmsg_…`).
//!
//! Rights are enforced by the extractor a handler takes, so each handler's signature says who
//! may call it: [`AdminUser`] (an organisation administrator), [`AnyUser`], [`GatewayCaller`],
//! or [`Caller`] (user or gateway); a user's rights in a project are `rights.rs`'s. Tokens are
//! looked up by their SHA-256 hash; a token is never logged or echoed. A disabled user's token,
//! a rotated-away token and a revoked gateway's token all answer 401.

use axum::extract::FromRequestParts;
use http::request::Parts;

use crate::kms::api::{GATEWAY_TOKEN_PREFIX, SSO_ACCESS_PREFIX, USER_TOKEN_PREFIX};
use crate::server::edge::error::ApiError;
use crate::server::edge::refusals::record_caller;
use crate::server::edge::state::{now as state_now, AppState};
use crate::server::store::{GatewayRecord, StoreError, TokenHash, UserRecord};

/// An authenticated caller.
#[derive(Debug, Clone)]
pub(crate) enum Caller {
    /// A user.
    User(UserRecord),
    /// An enrolled gateway.
    Gateway(GatewayRecord),
}

/// A user, administrator or not.
#[derive(Debug, Clone)]
pub(crate) struct AnyUser(pub(crate) UserRecord);

/// An organisation administrator.
#[derive(Debug, Clone)]
pub(crate) struct AdminUser(pub(crate) UserRecord);

/// An enrolled gateway.
#[derive(Debug, Clone)]
pub(crate) struct GatewayCaller(pub(crate) GatewayRecord);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer_token(parts)?;
        let hash = TokenHash::of(token);
        let invalid = |e: StoreError| match e {
            StoreError::NotFound(_) => ApiError::unauthenticated("invalid or revoked API token"),
            other => other.into(),
        };
        let extensions = &parts.extensions;
        if token.starts_with(USER_TOKEN_PREFIX) {
            record_caller(extensions, "unknown user token");
            let user = state.store.user_by_token(&hash).await.map_err(invalid)?;
            if user.disabled {
                record_caller(extensions, format!("user {} (disabled)", user.name));
                return Err(ApiError::unauthenticated(format!(
                    "user {} is disabled; an organisation administrator can enable it again",
                    user.name
                )));
            }
            record_caller(extensions, format!("user {}", user.name));
            Ok(Self::User(user))
        } else if token.starts_with(SSO_ACCESS_PREFIX) {
            record_caller(extensions, "unknown or expired single sign-on token");
            let (user, _) =
                state
                    .store
                    .sso_access(&hash, state_now())
                    .await
                    .map_err(|e| {
                        match e {
                    StoreError::NotFound(_) => ApiError::unauthenticated(
                        "single sign-on token expired or revoked; the CLI refreshes it, or run \
                         kms-pam login --sso",
                    ),
                    other => other.into(),
                }
                    })?;
            if user.disabled {
                record_caller(extensions, format!("user {} (disabled)", user.name));
                return Err(ApiError::unauthenticated(format!(
                    "user {} is disabled; an organisation administrator can enable it again",
                    user.name
                )));
            }
            record_caller(extensions, format!("user {} (single sign-on)", user.name));
            Ok(Self::User(user))
        } else if token.starts_with(GATEWAY_TOKEN_PREFIX) {
            record_caller(extensions, "unknown or revoked gateway token");
            let gateway = state.store.gateway_by_token(&hash).await.map_err(invalid)?;
            record_caller(extensions, format!("gateway {}", gateway.name));
            Ok(Self::Gateway(gateway))
        } else {
            record_caller(extensions, "a token that is not a kms-pam token");
            Err(ApiError::unauthenticated(
                "not a kms-pam API token (expected kmsu_…, kmss_… or kmsg_…)",
            ))
        }
    }
}

impl FromRequestParts<AppState> for AnyUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match Caller::from_request_parts(parts, state).await? {
            Caller::User(user) => Ok(Self(user)),
            Caller::Gateway(_) => Err(ApiError::forbidden(
                "this endpoint is for users; gateways use /v1/gateway/…",
            )),
        }
    }
}

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let AnyUser(user) = AnyUser::from_request_parts(parts, state).await?;
        Self::of(user)
    }
}

impl AdminUser {
    /// `user` if they administer the organisation, else the API's refusal.
    pub(crate) fn of(user: UserRecord) -> Result<Self, ApiError> {
        if user.admin {
            Ok(Self(user))
        } else {
            Err(ApiError::forbidden(
                "only organisation administrators may do this",
            ))
        }
    }
}

impl FromRequestParts<AppState> for GatewayCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match Caller::from_request_parts(parts, state).await? {
            Caller::Gateway(gateway) => Ok(Self(gateway)),
            Caller::User(_) => Err(ApiError::forbidden("this endpoint is for gateways only")),
        }
    }
}

/// The token of an `Authorization: Bearer TOKEN` header.
fn bearer_token(parts: &Parts) -> Result<&str, ApiError> {
    let token = crate::net::bearer::token(&parts.headers)
        .ok_or_else(|| ApiError::unauthenticated("missing Authorization: Bearer API token"))?;
    std::str::from_utf8(token)
        .map_err(|_| ApiError::unauthenticated("malformed Authorization header"))
}

#[cfg(test)]
mod tests {
    use http::header::AUTHORIZATION;

    use super::*;
    use crate::kms::api::ErrorCode;

    fn parts(header: Option<&str>) -> Parts {
        let mut request = http::Request::builder().uri("/v1/whoami");
        if let Some(value) = header {
            request = request.header(AUTHORIZATION, value);
        }
        request.body(()).unwrap().into_parts().0
    }

    #[test]
    fn bearer_tokens_are_parsed_strictly() {
        assert_eq!(
            bearer_token(&parts(Some("Bearer kmsu_x"))).unwrap(),
            "kmsu_x"
        );
        assert_eq!(
            bearer_token(&parts(Some("bearer  kmsu_x "))).unwrap(),
            "kmsu_x"
        );
        for bad in [None, Some("Basic abc"), Some("Bearer"), Some("Bearer   ")] {
            let err = bearer_token(&parts(bad)).unwrap_err();
            assert_eq!(err.code(), ErrorCode::Unauthenticated, "{bad:?}");
        }
    }
}
