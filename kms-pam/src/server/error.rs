//! The one edge where failures become HTTP answers: `{"error": {"code", "message"}}` with the
//! status docs/api.md assigns to the code. Also the request extractors whose rejections go
//! through the same edge, so a malformed body, query or path is a clean `invalid` answer.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::request::Parts;
use http::StatusCode;
use serde::de::DeserializeOwned;

use crate::kms::api::{ErrorBody, ErrorCode, ErrorDetail};
use crate::server::store::StoreError;
use crate::tls::TlsError;

/// An API failure: HTTP status, contract code and a one-line message free of secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    message: String,
}

impl ApiError {
    /// An answer with the status the code stands for.
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status: code.status(),
            code,
            message: message.into(),
        }
    }

    /// 401: no credentials, or credentials that do not identify anybody.
    pub(crate) fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthenticated, message)
    }

    /// 403: the caller is known but may not do this.
    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    /// 404.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// 409.
    pub(crate) fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }

    /// 400.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Invalid, message)
    }

    /// 503: retry later.
    pub(crate) fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unavailable, message)
    }

    /// 500. The detail goes to the log, not to the caller.
    pub(crate) fn internal(detail: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(ErrorCode::Internal, "internal error; see the KMS log")
    }

    /// A request the framework could not read (bad JSON, query or path; body too large; wrong
    /// method). Keeps the framework's status (400, 405, 413, 415, 422) under the `invalid` code.
    pub(crate) fn unreadable(status: StatusCode, message: impl Into<String>) -> Self {
        let mut error = Self::new(ErrorCode::Invalid, message);
        if status.is_client_error() {
            error.status = status;
        }
        error
    }

    /// The HTTP status.
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    /// The one-line message.
    pub(crate) fn message(&self) -> &str {
        &self.message
    }

    /// The contract code.
    #[cfg(test)]
    pub(crate) fn code(&self) -> ErrorCode {
        self.code
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(_) => Self::not_found(e.to_string()),
            StoreError::Conflict(m) => Self::conflict(m),
            StoreError::Invalid(m) => Self::invalid(m),
            StoreError::Unavailable(_) => {
                tracing::error!(error = %e, "store unavailable");
                Self::unavailable("the KMS store is unavailable; retry later")
            }
            StoreError::Corrupt(_) => Self::internal(&e),
        }
    }
}

impl From<TlsError> for ApiError {
    fn from(e: TlsError) -> Self {
        match e {
            TlsError::InvalidCsr(_) | TlsError::InvalidName(_) => Self::invalid(e.to_string()),
            _ => Self::internal(&e),
        }
    }
}

/// `Json<T>` whose rejection is an [`ApiError`].
pub(crate) struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

fn json_rejection(rejection: &JsonRejection) -> ApiError {
    let status = rejection.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::unreadable(status, "request body is too large");
    }
    ApiError::unreadable(status, rejection.body_text())
}

/// `Query<T>` whose rejection is an [`ApiError`].
pub(crate) struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Self(value))
            .map_err(|rejection: QueryRejection| {
                ApiError::unreadable(rejection.status(), rejection.body_text())
            })
    }
}

/// `Path<T>` whose rejection is an [`ApiError`].
pub(crate) struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Self(value))
            .map_err(|rejection: PathRejection| {
                ApiError::unreadable(rejection.status(), rejection.body_text())
            })
    }
}

/// Answer for paths no route matches.
pub(crate) async fn unknown_route() -> ApiError {
    ApiError::not_found("no such API endpoint")
}

/// Answer for a known path with the wrong method.
pub(crate) async fn wrong_method() -> ApiError {
    ApiError::unreadable(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this endpoint",
    )
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    async fn body_of(error: ApiError) -> (StatusCode, ErrorBody) {
        let response = error.into_response();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn errors_render_the_contract_shape() {
        let (status, body) = body_of(ApiError::forbidden("admins only")).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(body.error.code, ErrorCode::Forbidden);
        assert_eq!(body.error.message, "admins only");
    }

    #[tokio::test]
    async fn store_errors_map_to_codes_and_hide_details() {
        let cases = [
            (
                StoreError::NotFound("user bob".into()),
                StatusCode::NOT_FOUND,
            ),
            (StoreError::Conflict("taken".into()), StatusCode::CONFLICT),
            (StoreError::Invalid("bad".into()), StatusCode::BAD_REQUEST),
            (
                StoreError::Unavailable("disk /x".into()),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                StoreError::Corrupt("row 7".into()),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
        ];
        for (error, expected) in cases {
            let (status, body) = body_of(ApiError::from(error)).await;
            assert_eq!(status, expected);
            assert!(!body.error.message.contains("/x") && !body.error.message.contains("row 7"));
        }
        let csr = ApiError::from(TlsError::InvalidCsr(rcgen::Error::RingUnspecified));
        assert_eq!(csr.code(), ErrorCode::Invalid);
    }
}
