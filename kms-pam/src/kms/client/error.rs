//! The error type of the KMS client.

use crate::kms::api::ErrorCode;
pub use crate::net::http_client::ConnectionFailure;

/// Why a call to the KMS failed.
///
/// The variant says where the failure came from, so a caller can decide what to do: `Unreachable`
/// is usually transient (retry, or tell the user the KMS is down) and says how it failed,
/// `Api` is the KMS's considered answer (fix the request), `NotKms`, `UnexpectedAnswer` and
/// `AnswerBody` mean the other side is not speaking this API. Messages never contain the API token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KmsError {
    /// A KMS URL cannot be used (it does not parse, is not http(s), has no host, or carries a
    /// query or fragment).
    #[error("invalid KMS URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it, in a few words.
        reason: String,
    },
    /// A plain `http://` KMS URL to a host other than this machine, without
    /// [`KmsClientOptions::with_insecure_http`](super::KmsClientOptions::with_insecure_http):
    /// tokens would cross the network in clear. Nothing was sent.
    #[error(
        "refusing the plain http:// KMS URL {url}: API tokens, gateway tokens and \
         service-account credentials would cross the network in clear. Use an https:// URL \
         (KMS serves HTTPS with --tls-cert/--tls-key; a private CA is trusted with --kms-ca \
         FILE), or pass --insecure-http to allow plain HTTP on a lab network"
    )]
    PlainHttp {
        /// The URL as given.
        url: String,
    },
    /// A list of KMS URLs has an empty entry.
    #[error("invalid KMS URL list {urls:?}: an empty entry (separate URLs with commas)")]
    EmptyUrlInList {
        /// The list as given.
        urls: String,
    },
    /// The API token cannot be sent in an HTTP header.
    #[error("the API token contains characters a token cannot have")]
    InvalidToken,
    /// The client's TLS settings cannot be used.
    #[error("cannot set up TLS for the KMS: {0}")]
    Tls(#[source] crate::tls::TlsError),
    /// A request cannot be built (an object name that makes an invalid URL).
    #[error("cannot build a request for {url}: {source}")]
    Request {
        /// The request's URL.
        url: String,
        /// Why.
        #[source]
        source: http::Error,
    },
    /// No answer: connection refused, DNS failure, TLS failure, timeout, connection cut.
    #[error("cannot reach KMS at {url}: {detail}")]
    Unreachable {
        /// The KMS base URL.
        url: String,
        /// How it failed.
        failure: ConnectionFailure,
        /// What went wrong, in a few words (`connection refused`).
        detail: String,
    },
    /// The KMS answered with an API error (`{"error": {"code", "message"}}`).
    #[error("{message} ({code})")]
    Api {
        /// HTTP status.
        status: u16,
        /// What kind of refusal or failure it is.
        code: ErrorCode,
        /// One line a person can act on.
        message: String,
    },
    /// A non-2xx answer without the API's error body (a proxy's page, another service on that
    /// port: not a KMS at all).
    #[error(
        "unexpected answer from KMS: {what} answered HTTP {status} without an API error body; \
         is this URL a kms-pam server?"
    )]
    NotKms {
        /// The request (`GET /v1/users`).
        what: String,
        /// The answer's HTTP status.
        status: http::StatusCode,
    },
    /// A 2xx answer that is not what the API promises (not JSON, wrong shape).
    #[error("unexpected answer from KMS: answer to {what} is not what the API promises: {source}")]
    UnexpectedAnswer {
        /// The request (`GET /v1/users`).
        what: String,
        /// Why it does not decode.
        #[source]
        source: serde_json::Error,
    },
    /// The answer's body could not be read for a reason other than the connection.
    #[error("unexpected answer from KMS: answer to {what}: {source}")]
    AnswerBody {
        /// The request (`GET /v1/users`).
        what: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The request's body could not be encoded as JSON.
    #[error("unexpected answer from KMS: cannot encode the request: {0}")]
    Encode(#[source] serde_json::Error),
}

impl KmsError {
    /// The API error code, when the KMS answered with one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The HTTP status, when the KMS answered with an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// How the KMS could not be reached, when it could not.
    pub fn connection_failure(&self) -> Option<ConnectionFailure> {
        match self {
            Self::Unreachable { failure, .. } => Some(*failure),
            _ => None,
        }
    }

    /// Whether trying again later may succeed: the KMS was unreachable or said it was
    /// unavailable or failed internally.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable { .. } => true,
            Self::Api { code, .. } => code.is_transient(),
            _ => false,
        }
    }

    /// Whether the KMS said the object does not exist (or the caller may not see it).
    pub fn is_not_found(&self) -> bool {
        self.code() == Some(ErrorCode::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_show_message_and_code() {
        let e = KmsError::Api {
            status: 404,
            code: ErrorCode::NotFound,
            message: "resource prod not found".into(),
        };
        assert_eq!(e.to_string(), "resource prod not found (not_found)");
        assert!(e.is_not_found());
        assert!(!e.is_transient());
        let down = KmsError::Unreachable {
            url: "http://127.0.0.1:1".into(),
            failure: ConnectionFailure::Refused,
            detail: "connection refused".into(),
        };
        assert_eq!(
            down.to_string(),
            "cannot reach KMS at http://127.0.0.1:1: connection refused"
        );
        assert!(down.is_transient());
        assert_eq!(down.connection_failure(), Some(ConnectionFailure::Refused));
        let failed = KmsError::Api {
            status: 503,
            code: ErrorCode::Unavailable,
            message: "retry later".into(),
        };
        assert!(failed.is_transient());
    }
}
