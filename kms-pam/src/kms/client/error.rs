//! The error type of the KMS client, and how transport failures become one readable line.

use std::error::Error as StdError;
use std::io;

/// Why a call to the KMS failed.
///
/// The variant says where the failure came from, so a caller can decide what to do: `Unreachable`
/// is usually transient (retry, or tell the user the KMS is down), `Api` is the KMS's considered
/// answer (fix the request), `Protocol` means the other side is not speaking this API. Messages
/// never contain the API token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KmsError {
    /// The client cannot be built from what it was given (URL, token, TLS settings).
    #[error("{0}")]
    Config(String),
    /// No answer: connection refused, DNS failure, TLS failure, timeout, connection cut.
    #[error("cannot reach KMS at {url}: {detail}")]
    Unreachable {
        /// The KMS base URL.
        url: String,
        /// What went wrong, in a few words (`connection refused`).
        detail: String,
    },
    /// The KMS answered with an API error (`{"error": {"code", "message"}}`).
    #[error("{message} ({code})")]
    Api {
        /// HTTP status.
        status: u16,
        /// `unauthenticated`, `forbidden`, `not_found`, `conflict`, `invalid`, `unavailable`,
        /// `internal`.
        code: String,
        /// One line a person can act on.
        message: String,
    },
    /// The answer was not what the API promises (not JSON, wrong shape, not a KMS at all).
    #[error("unexpected answer from KMS: {0}")]
    Protocol(String),
}

impl KmsError {
    /// The API error code, when the KMS answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. } => Some(code),
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

    /// Whether trying again later may succeed: the KMS was unreachable or said it was
    /// unavailable or failed internally.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable { .. } => true,
            Self::Api { status, .. } => *status == 503 || *status == 500,
            _ => false,
        }
    }

    /// Whether the KMS said the object does not exist (or the caller may not see it).
    pub fn is_not_found(&self) -> bool {
        self.code() == Some("not_found")
    }
}

/// A transport failure in a few words. hyper's own top-level messages ("client error
/// (Connect)") say nothing a user can act on, so the causes are listed instead, and the common
/// socket failures are named plainly.
pub(super) fn transport_detail(error: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = error.source();
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            if let Some(plain) = plain_io_kind(io.kind()) {
                return plain.to_owned();
            }
        }
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    if parts.is_empty() {
        error.to_string()
    } else {
        parts.join(": ")
    }
}

fn plain_io_kind(kind: io::ErrorKind) -> Option<&'static str> {
    Some(match kind {
        io::ErrorKind::ConnectionRefused => "connection refused",
        io::ErrorKind::TimedOut => "connection timed out",
        io::ErrorKind::ConnectionReset => "connection reset",
        io::ErrorKind::ConnectionAborted => "connection aborted",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("client error (Connect)")]
    struct Top(#[source] Middle);

    #[derive(Debug, thiserror::Error)]
    #[error("tcp connect error")]
    struct Middle(#[source] io::Error);

    #[test]
    fn refused_connections_are_named_plainly() {
        let e = Top(Middle(io::Error::from(io::ErrorKind::ConnectionRefused)));
        assert_eq!(transport_detail(&e), "connection refused");
    }

    #[test]
    fn other_failures_list_their_causes() {
        let e = Top(Middle(io::Error::other("no route to the moon")));
        assert_eq!(
            transport_detail(&e),
            "tcp connect error: no route to the moon"
        );
    }

    #[test]
    fn api_errors_show_message_and_code() {
        let e = KmsError::Api {
            status: 404,
            code: "not_found".into(),
            message: "resource prod not found".into(),
        };
        assert_eq!(e.to_string(), "resource prod not found (not_found)");
        assert!(e.is_not_found());
        assert!(!e.is_transient());
        let down = KmsError::Unreachable {
            url: "http://127.0.0.1:1".into(),
            detail: "connection refused".into(),
        };
        assert_eq!(
            down.to_string(),
            "cannot reach KMS at http://127.0.0.1:1: connection refused"
        );
        assert!(down.is_transient());
    }
}
