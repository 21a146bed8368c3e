//! The `Authorization: Bearer TOKEN` header, written and read in one place: the KMS client sends
//! its API token with it, the KMS server reads it back. The gateway (injecting the account's
//! token) and the local proxy (checking the session's local token) do the same.

use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue};

use crate::secret::Secret;

/// The token cannot be sent as a header value (it holds control characters or a line break).
#[derive(Debug, thiserror::Error)]
#[error("the token is not a valid header value")]
pub(crate) struct InvalidToken;

/// `Bearer TOKEN`, marked sensitive so that HTTP/2 never indexes it and hyper's `Debug` of the
/// header map does not print it.
pub(crate) fn header_value(token: &Secret) -> Result<HeaderValue, InvalidToken> {
    let mut value =
        HeaderValue::try_from(format!("Bearer {}", token.expose())).map_err(|_| InvalidToken)?;
    value.set_sensitive(true);
    Ok(value)
}

/// The token of an `Authorization: Bearer TOKEN` header (scheme case-insensitive, surrounding
/// blanks trimmed); `None` when there is no such header, another scheme, or an empty token.
pub(crate) fn token(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(AUTHORIZATION)?.as_bytes();
    let (scheme, rest) = value.split_at_checked(7)?;
    let token = rest.trim_ascii();
    (scheme.eq_ignore_ascii_case(b"bearer ") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn written_tokens_read_back() {
        let value = header_value(&Secret::new("kmsu_abc")).unwrap();
        assert!(value.is_sensitive());
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, value);
        assert_eq!(token(&headers), Some(&b"kmsu_abc"[..]));
        assert!(header_value(&Secret::new("a\nb")).is_err());
    }

    #[test]
    fn only_non_empty_bearer_tokens_count() {
        assert_eq!(token(&with("bearer  t1 ")), Some(&b"t1"[..]));
        for bad in ["Basic abc", "Bearer", "Bearer   ", "Bearer-ish", ""] {
            assert_eq!(token(&with(bad)), None, "{bad:?}");
        }
        assert_eq!(token(&HeaderMap::new()), None);
    }
}
