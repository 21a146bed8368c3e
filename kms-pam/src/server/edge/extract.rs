//! The one edge where failures become HTTP answers: an [`ApiError`] answers
//! `{"error": {"code", "message"}}` with its status. Also the request extractors whose rejections
//! go through the same edge, so a malformed body, query or path is a clean `invalid` answer.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::request::Parts;
use http::StatusCode;
use serde::de::DeserializeOwned;

use crate::kms::api::{ErrorBody, ErrorDetail};
use crate::server::edge::error::ApiError;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = self.into_parts();
        let body = ErrorBody {
            error: ErrorDetail { code, message },
        };
        (status, Json(body)).into_response()
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
    use crate::kms::api::ErrorCode;
    use crate::server::store::StoreError;
    use crate::tls::TlsError;

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
