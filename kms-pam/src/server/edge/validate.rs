//! Checks on what callers send, with messages that say what is accepted.

use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

use crate::kms::api::GatewayReach;
use crate::secret::Secret;
use crate::server::edge::error::ApiError;
use crate::time::format_duration;

/// Longest name of a user, gateway, resource or account.
const MAX_NAME: usize = 63;
/// Longest free text (reason, description).
const MAX_TEXT: usize = 1024;
/// Longest session an account may allow.
pub(crate) const MAX_ACCOUNT_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);
/// Largest service-account token accepted (real ones are a few KiB).
const MAX_TOKEN_LEN: usize = 64 * 1024;
/// Account maximum when none is given.
pub(crate) const DEFAULT_ACCOUNT_DURATION: Duration = Duration::from_secs(8 * 3600);
/// Most relays one gateway may report in a heartbeat.
pub(crate) const MAX_RELAYS: usize = 8;
/// Longest relay address a gateway may report, in bytes.
pub(crate) const MAX_RELAY_ADDRESS: usize = 255;

/// A name: 1-63 ASCII letters, digits, `-`, `_` or `.`, starting with a letter or digit, so it
/// is safe in `RESOURCE/ACCOUNT`, URLs, kubeconfig contexts and certificate identities.
pub(crate) fn name(what: &str, value: &str) -> Result<(), ApiError> {
    let valid = value.len() <= MAX_NAME
        && value.starts_with(|c: char| c.is_ascii_alphanumeric())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "invalid {what} name {value:?}: use 1-{MAX_NAME} letters, digits, '-', '_' or '.', \
             starting with a letter or digit"
        )))
    }
}

/// Optional free text of at most 1024 characters.
pub(crate) fn text(what: &str, value: Option<&str>) -> Result<(), ApiError> {
    match value {
        Some(text) if text.chars().count() > MAX_TEXT => Err(ApiError::invalid(format!(
            "{what} is longer than {MAX_TEXT} characters"
        ))),
        _ => Ok(()),
    }
}

/// A `host:port` address (IPv6 in brackets); returns the host, as certificate names want it.
pub(crate) fn address(value: &str) -> Result<String, ApiError> {
    let invalid = || {
        ApiError::invalid(format!(
            "invalid address {value:?}: expected host:port (IPv6 as [addr]:port)"
        ))
    };
    let (host, port) = value.rsplit_once(':').ok_or_else(invalid)?;
    port.parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(invalid)?;
    let host = match host.strip_prefix('[') {
        Some(inner) => inner.strip_suffix(']').ok_or_else(invalid)?,
        None if host.contains(':') => return Err(invalid()),
        None => host,
    };
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c == '/') {
        return Err(invalid());
    }
    if host
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_unspecified())
    {
        return Err(ApiError::invalid(format!(
            "invalid address {value:?}: an unspecified address cannot be dialled; give the \
             address CLIs reach the gateway at"
        )));
    }
    Ok(host.to_owned())
}

/// A name TLS clients can dial and check a certificate for: a DNS name or an IP literal, by the
/// rules rustls applies when connecting (so no wildcard, no URL, no port).
pub(crate) fn server_name(what: &str, value: &str) -> Result<(), ApiError> {
    match ServerName::try_from(value) {
        Ok(ServerName::DnsName(_) | ServerName::IpAddress(_)) => Ok(()),
        _ => Err(ApiError::invalid(format!(
            "invalid {what} {value:?}: expected a DNS name or an IP address"
        ))),
    }
}

/// A relay's address as a gateway reports it: at most 255 bytes of `host:port` (IPv6 as
/// `[addr]:port`), the host a DNS name or an IP address, as CLIs dial it.
pub(crate) fn relay_address(value: &str) -> Result<(), ApiError> {
    if value.len() > MAX_RELAY_ADDRESS {
        return Err(ApiError::invalid(format!(
            "a relay address is {} bytes long; at most {MAX_RELAY_ADDRESS} are accepted",
            value.len()
        )));
    }
    let invalid = || {
        ApiError::invalid(format!(
            "invalid relay address {value:?}: expected host:port (IPv6 as [addr]:port), the \
             host a DNS name or an IP address"
        ))
    };
    let host = address(value).map_err(|_| invalid())?;
    server_name("relay host", &host).map_err(|_| invalid())
}

/// How a gateway says CLIs reach it: at most [`MAX_RELAYS`] relays, each a valid
/// [`relay_address`].
pub(crate) fn reach(reach: &GatewayReach) -> Result<(), ApiError> {
    if reach.relays.len() > MAX_RELAYS {
        return Err(ApiError::invalid(format!(
            "a gateway may report at most {MAX_RELAYS} relays; this heartbeat lists {}",
            reach.relays.len()
        )));
    }
    reach
        .relays
        .iter()
        .try_for_each(|relay| relay_address(&relay.url))
}

/// An `https://` API server URL with a host. Plain `http://` would carry the service-account
/// token in cleartext (issue 15).
pub(crate) fn server_url(value: &str) -> Result<(), ApiError> {
    let invalid = |why: &str| ApiError::invalid(format!("invalid API server URL {value:?}: {why}"));
    let url = url::Url::parse(value).map_err(|e| invalid(&e.to_string()))?;
    if url.scheme() != "https" {
        return Err(ApiError::invalid(format!(
            "API server URLs must use https:// (the gateway sends the account's token to it); \
             got {value:?}"
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        // Every member of the project sees a resource's URL: a credential in it would be theirs.
        return Err(ApiError::invalid(
            "an API server URL must not carry a user name or password (every member of the \
             project sees the URL); give the credential as an account's token instead",
        ));
    }
    Ok(())
}

/// A resource URL as shown to people: without a user name or password, which resources created
/// before such URLs were refused may hold.
pub(crate) fn shown_url(value: &str) -> String {
    match url::Url::parse(value) {
        Ok(mut url) if !url.username().is_empty() || url.password().is_some() => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.to_string()
        }
        _ => value.to_owned(),
    }
}

/// A PEM bundle holding at least one certificate, all of them parseable.
pub(crate) fn ca_bundle(pem: &str) -> Result<(), ApiError> {
    let invalid = || ApiError::invalid("ca_cert must be a PEM bundle of certificates");
    let mut count = 0;
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        cert.map_err(|_| invalid())?;
        count += 1;
    }
    if count == 0 {
        return Err(invalid());
    }
    Ok(())
}

/// An account's maximum session length: more than zero, at most 30 days.
pub(crate) fn max_duration(secs: u64) -> Result<(), ApiError> {
    if secs == 0 || secs > MAX_ACCOUNT_DURATION.as_secs() {
        return Err(ApiError::invalid(format!(
            "max_duration_secs must be between 1 and {} ({})",
            MAX_ACCOUNT_DURATION.as_secs(),
            format_duration(MAX_ACCOUNT_DURATION)
        )));
    }
    Ok(())
}

/// A service-account token: trimmed, non-empty, without whitespace, at most 64 KiB. The message
/// never quotes the token.
pub(crate) fn account_token(token: &Secret) -> Result<Secret, ApiError> {
    let trimmed = token.expose().trim();
    if trimmed.is_empty() || trimmed.len() > MAX_TOKEN_LEN || trimmed.contains(char::is_whitespace)
    {
        return Err(ApiError::invalid(
            "token must be a non-empty service-account token without whitespace (at most 64 KiB)",
        ));
    }
    Ok(Secret::new(trimmed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["prod", "a", "gw-1", "eu_west.2", "A9"] {
            assert!(name("resource", ok).is_ok(), "{ok}");
        }
        let long = "x".repeat(64);
        for bad in ["", "-x", "a/b", "a b", "é", long.as_str()] {
            assert!(name("resource", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn addresses() {
        assert_eq!(address("gw.example:8443").unwrap(), "gw.example");
        assert_eq!(address("10.0.0.5:8443").unwrap(), "10.0.0.5");
        assert_eq!(address("[::1]:8443").unwrap(), "::1");
        for bad in [
            "gw",
            "gw:",
            "gw:0",
            "gw:99999",
            ":8443",
            "::1:8443",
            "[::1:8443",
            "a b:1",
            "0.0.0.0:8443",
            "[::]:8443",
        ] {
            assert!(address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn server_names_and_relay_addresses() {
        for ok in [
            "relay.example.com",
            "relay",
            "10.0.0.7",
            "::1",
            "a-b.c_d.example",
        ] {
            assert!(server_name("relay host", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "*.example.com",
            "relay.example.com:443",
            "https://r",
            "<b>",
            "a b",
        ] {
            let err = server_name("relay host", bad).unwrap_err();
            assert!(err.message().contains("DNS name or an IP address"), "{bad}");
        }
        for ok in ["relay.example.com:443", "10.0.0.7:8443", "[::1]:443"] {
            assert!(relay_address(ok).is_ok(), "{ok}");
        }
        for bad in [
            "relay",
            "relay:0",
            "https://relay:443",
            "<b>:443",
            "[::1:443",
            "*.r:443",
        ] {
            let err = relay_address(bad).unwrap_err();
            assert!(
                err.message().contains("expected host:port"),
                "{bad}: {err:?}"
            );
        }
        let long = format!("{}.example:443", "r".repeat(MAX_RELAY_ADDRESS));
        let err = relay_address(&long).unwrap_err();
        assert!(err.message().contains("at most 255"), "{err:?}");
    }

    #[test]
    fn urls_bundles_and_durations() {
        assert!(server_url("https://10.0.0.1:6443").is_ok());
        assert!(server_url("ftp://x").is_err());
        let err = server_url("http://10.0.0.1:8080").unwrap_err();
        assert_eq!(err.code(), crate::kms::api::ErrorCode::Invalid);
        assert!(format!("{err:?}").contains("must use https://"), "{err:?}");
        assert!(server_url("not a url").is_err());
        let err = server_url("https://admin:hunter2@10.0.0.1:6443").unwrap_err();
        assert!(err.message().contains("user name or password"), "{err:?}");
        assert!(server_url("https://admin@10.0.0.1:6443").is_err());
        assert_eq!(
            shown_url("https://admin:hunter2@10.0.0.1:6443/"),
            "https://10.0.0.1:6443/"
        );
        assert_eq!(shown_url("https://10.0.0.1:6443"), "https://10.0.0.1:6443");
        assert!(ca_bundle("nothing").is_err());
        let ca = crate::tls::CertificateAuthority::generate("t", Duration::from_secs(60)).unwrap();
        assert!(ca_bundle(ca.cert_pem()).is_ok());
        assert!(max_duration(0).is_err());
        assert!(max_duration(3600).is_ok());
        let err = max_duration(MAX_ACCOUNT_DURATION.as_secs() + 1).unwrap_err();
        assert_eq!(err.code(), crate::kms::api::ErrorCode::Invalid);
        assert!(text("reason", Some(&"r".repeat(1025))).is_err());
        assert!(text("reason", None).is_ok());
    }
}
