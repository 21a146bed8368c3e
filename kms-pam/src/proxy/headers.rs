//! Header policy: what may cross the proxy, and the credential the gateway puts in.
//!
//! Hop-by-hop headers (RFC 9110 §7.6.1) belong to one connection and are removed on every hop,
//! except `Connection: Upgrade` + `Upgrade` on an upgrade request or its 101 answer, which must
//! pass for exec, attach and port-forward to work. The gateway additionally removes anything a
//! client could use to act as someone else.

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

/// Removes every `Impersonate-*` header (user, group, uid, extra): a session acts only as its
/// service account.
pub fn strip_impersonation(headers: &mut HeaderMap) {
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            name.as_str()
                .get(..12)
                .is_some_and(|p| p.eq_ignore_ascii_case("impersonate-"))
        })
        .cloned()
        .collect();
    for name in names {
        headers.remove(name);
    }
}

/// Replaces any client `Authorization` with the account's bearer token.
pub fn inject_bearer(headers: &mut HeaderMap, token: &Secret) -> Result<(), InvalidToken> {
    let mut value =
        HeaderValue::try_from(format!("Bearer {}", token.expose())).map_err(|_| InvalidToken)?;
    value.set_sensitive(true);
    headers.insert(header::AUTHORIZATION, value);
    Ok(())
}

/// The account token cannot be sent as a header (it holds control characters).
#[derive(Debug, thiserror::Error)]
#[error("the account's token is not a valid header value")]
pub struct InvalidToken;

/// The bearer token of an `Authorization` header, if it has one.
pub fn bearer_token(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, rest) = value.split_at_checked(7)?;
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| rest.trim_ascii())
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
        strip_impersonation(&mut h);
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
}
