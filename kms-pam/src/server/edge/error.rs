//! What a failure of the API is ([`ApiError`]): the status docs/api.md assigns to its code, the
//! code and a one-line message free of secrets. Store and TLS failures become one here. It is a
//! plain value, so the session lifecycle returns it too; `extract.rs` turns it into the answer
//! `{"error": {"code", "message"}}`.

use http::StatusCode;

use crate::kms::api::ErrorCode;
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

    /// Status, code and message, to answer with.
    pub(crate) fn into_parts(self) -> (StatusCode, ErrorCode, String) {
        (self.status, self.code, self.message)
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
