//! Header policy: what may cross the proxy, and the credential the gateway puts in.
//!
//! Hop-by-hop headers (RFC 9110 §7.6.1) belong to one connection and are removed on every hop,
//! except `Connection: Upgrade` + `Upgrade` on an upgrade request or its 101 answer, which must
//! pass for exec, attach and port-forward to work. The gateway additionally removes anything a
//! client could use to act as someone else.

// Public only to kms-pam's benchmarks (feature `bench-internals`); crate-private otherwise.
#![cfg_attr(not(feature = "bench-internals"), allow(unreachable_pub))]

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::secret::Secret;

/// Headers that never cross a hop.
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// `keep-alive` has no constant in `http`.
const KEEP_ALIVE: &str = "keep-alive";

/// Whether the message asks to switch protocols (WebSocket, SPDY).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .any(|v| has_token(v, "upgrade"))
}

fn has_token(value: &HeaderValue, token: &str) -> bool {
    value.to_str().is_ok_and(|v| {
        v.split(',')
            .any(|part| part.trim().eq_ignore_ascii_case(token))
    })
}

/// Removes hop-by-hop headers, including those the `Connection` header names. When `upgrade` is set,
/// keeps `Connection: Upgrade` and `Upgrade` so the protocol switch reaches the other side.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    // Most messages carry none: one pass over the names finds out, where the removals below
    // hash eight names on every message (~1k instructions per message, docs/performance.md).
    if !upgrade && !headers.keys().any(is_hop_by_hop) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .filter(|name| !(upgrade && name == header::UPGRADE))
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(KEEP_ALIVE);
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    } else {
        headers.remove(header::UPGRADE);
    }
}

/// Whether `strip_hop_by_hop` removes `name` whatever the `Connection` header says (it names
/// others only when present, and it is one of these).
fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name) || name == header::UPGRADE || name == KEEP_ALIVE
}

/// The `Impersonate-*` headers a request carries, as `Name: value` joined by `; ` (values cut
/// at 256 bytes), or `None`: what [`strip_impersonation`] is about to drop.
pub(crate) fn impersonation(headers: &HeaderMap) -> Option<String> {
    let asked: Vec<String> = headers
        .iter()
        .filter(|(name, _)| is_impersonation(name))
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes());
            let value: String = value.chars().take(256).collect();
            format!("{}: {value}", name.as_str())
        })
        .collect();
    (!asked.is_empty()).then(|| asked.join("; "))
}

fn is_impersonation(name: &HeaderName) -> bool {
    name.as_str()
        .get(..12)
        .is_some_and(|p| p.eq_ignore_ascii_case("impersonate-"))
}

/// Removes every `Impersonate-*` header (user, group, uid, extra): a session acts only as its
/// service account.
pub fn strip_impersonation(headers: &mut HeaderMap) {
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|name| is_impersonation(name))
        .cloned()
        .collect();
    for name in names {
        headers.remove(name);
    }
}

/// Replaces any client `Authorization` with the account's bearer token.
pub fn inject_bearer(headers: &mut HeaderMap, token: &Secret) -> Result<(), InvalidToken> {
    let value = crate::net::bearer::header_value(token).map_err(|_| InvalidToken)?;
    headers.insert(header::AUTHORIZATION, value);
    Ok(())
}

/// The account token cannot be sent as a header (it holds control characters).
#[derive(Debug, thiserror::Error)]
#[error("the account's token is not a valid header value")]
pub struct InvalidToken;

/// The bearer token of an `Authorization` header, if it has a non-empty one.
pub fn bearer_token(headers: &HeaderMap) -> Option<&[u8]> {
    crate::net::bearer::token(headers)
}

/// The largest header list the gateway forwards (HTTP/2 accounting: name + value + 32 bytes per
/// field): more than the loopback proxy accepts from kubectl (512 KiB), less than an API server
/// takes (kube-apiserver: 1 MiB). A larger one would make the API server close the pooled
/// connection, cutting every stream on it, other sessions' included; it is refused instead.
pub(crate) const MAX_FORWARDED_HEADER_BYTES: usize = 768 * 1024;

/// Refuses a header list over [`MAX_FORWARDED_HEADER_BYTES`] with a 431.
pub(crate) fn check_header_size(headers: &HeaderMap) -> Result<(), super::ProxyError> {
    let size: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 32)
        .sum();
    if size > MAX_FORWARDED_HEADER_BYTES {
        return Err(super::ProxyError::new(
            super::ErrorSource::Client,
            http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!(
                "the request's headers ({} KiB) exceed what kms-pam forwards ({} KiB)",
                size / 1024,
                MAX_FORWARDED_HEADER_BYTES / 1024
            ),
        ));
    }
    Ok(())
}

/// Refuses what kubectl never sends and an API server must not receive with the account's token:
/// `CONNECT` (a raw tunnel past every policy), `TRACE` (echoes the injected `Authorization` back),
/// and any target that is not an absolute path (`OPTIONS *`, authority or absolute form).
pub(crate) fn check_request_target(
    method: &http::Method,
    uri: &http::Uri,
) -> Result<(), super::ProxyError> {
    if *method == http::Method::CONNECT || *method == http::Method::TRACE {
        return Err(super::ProxyError::method_not_allowed(format!(
            "{method} requests are not forwarded by kms-pam"
        )));
    }
    let origin_form = uri.scheme().is_none()
        && uri.authority().is_none()
        && uri
            .path_and_query()
            .is_some_and(|pq| pq.as_str().starts_with('/'));
    // HTTP/2 requests carry scheme and authority; only their path matters.
    let h2_form = uri.scheme().is_some() && uri.path().starts_with('/');
    if origin_form || h2_form {
        Ok(())
    } else {
        Err(super::ProxyError::bad_request(format!(
            "request target {uri:?} is not a path; kms-pam forwards API paths only"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_go() {
        let mut h = headers(&[
            ("connection", "keep-alive, X-Secret-Hop"),
            ("keep-alive", "timeout=5"),
            ("x-secret-hop", "1"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("accept", "application/json"),
        ]);
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("accept"));
    }

    #[test]
    fn each_hop_by_hop_header_goes_even_without_a_connection_header() {
        for name in [
            "keep-alive",
            "upgrade",
            "te",
            "trailer",
            "transfer-encoding",
            "proxy-authorization",
            "proxy-authenticate",
        ] {
            let mut h = headers(&[(name, "x"), ("accept", "application/json")]);
            strip_hop_by_hop(&mut h, false);
            assert_eq!(h.len(), 1, "{name}: {h:?}");
        }
        let mut clean = headers(&[("accept", "application/json"), ("user-agent", "kubectl")]);
        strip_hop_by_hop(&mut clean, false);
        assert_eq!(clean.len(), 2, "{clean:?}");
    }

    #[test]
    fn upgrade_headers_survive_on_upgrades() {
        let mut h = headers(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-protocol", "v5.channel.k8s.io"),
        ]);
        assert!(is_upgrade(&h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h[header::CONNECTION], "Upgrade");
        assert_eq!(h[header::UPGRADE], "websocket");
        assert!(h.contains_key("sec-websocket-protocol"));
        assert!(!is_upgrade(&headers(&[("upgrade", "websocket")])));
    }

    #[test]
    fn impersonation_is_removed_in_every_form() {
        let mut h = headers(&[
            ("Impersonate-User", "system:admin"),
            ("impersonate-group", "system:masters"),
            ("Impersonate-Uid", "0"),
            ("impersonate-extra-scopes", "x"),
            ("impersonated", "kept: not the prefix"),
            ("accept", "*/*"),
        ]);
        // What is dropped is said first (the record and kubectl's warning).
        let asked = impersonation(&h).unwrap();
        assert!(asked.contains("impersonate-user: system:admin"), "{asked}");
        assert!(asked.contains("impersonate-extra-scopes: x") && !asked.contains("kept"));
        strip_impersonation(&mut h);
        assert_eq!(impersonation(&h), None);
        let left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(h.contains_key("accept") && h.contains_key("impersonated"));
    }

    #[test]
    fn bearer_is_replaced_not_added() {
        let mut h = headers(&[("authorization", "Bearer client-supplied")]);
        h.append(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic Zm9v"),
        );
        inject_bearer(&mut h, &Secret::new("sa-token")).unwrap();
        let all: Vec<_> = h.get_all(header::AUTHORIZATION).iter().collect();
        assert_eq!(all, vec!["Bearer sa-token"]);
        assert!(all[0].is_sensitive());
        assert!(inject_bearer(&mut h, &Secret::new("bad\ntoken")).is_err());
    }

    #[test]
    fn bearer_token_parsing() {
        assert_eq!(
            bearer_token(&headers(&[("authorization", "Bearer abc ")])),
            Some(&b"abc"[..])
        );
        assert_eq!(
            bearer_token(&headers(&[("authorization", "bearer abc")])),
            Some(&b"abc"[..])
        );
        assert_eq!(
            bearer_token(&headers(&[("authorization", "Basic abc")])),
            None
        );
        assert_eq!(bearer_token(&headers(&[("authorization", "Bear")])), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }

    #[test]
    fn methods_and_targets_kubectl_never_uses_are_refused() {
        use http::{Method, Uri};
        let path: Uri = "/api/v1/pods".parse().expect("uri");
        assert!(check_request_target(&Method::GET, &path).is_ok());
        let h2: Uri = "http://kms-pam.gateway/api".parse().expect("uri");
        assert!(check_request_target(&Method::POST, &h2).is_ok());
        let options: Uri = "/api".parse().expect("uri");
        assert!(check_request_target(&Method::OPTIONS, &options).is_ok());
        for method in [Method::CONNECT, Method::TRACE] {
            let refused = check_request_target(&method, &path).expect_err("refused");
            assert_eq!(refused.status(), http::StatusCode::METHOD_NOT_ALLOWED);
        }
        let star: Uri = "*".parse().expect("uri");
        let refused = check_request_target(&Method::OPTIONS, &star).expect_err("OPTIONS *");
        assert_eq!(refused.status(), http::StatusCode::BAD_REQUEST);
        let authority: Uri = "10.0.0.1:6443".parse().expect("uri");
        assert!(check_request_target(&Method::GET, &authority).is_err());
    }
}
