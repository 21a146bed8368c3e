//! Turning client-side TLS failures into errors a user can act on.
//!
//! The classification reads the `rustls::Error` inside the `io::Error` that tokio-rustls
//! returns, so it follows rustls' own types instead of its messages.

use std::io;

use rustls::AlertDescription;

use crate::tls::TUNNEL_ALPN;
use crate::transport::TransportError;

/// Why the gateway may refuse a valid-looking session certificate, for the user to check.
const CERT_REFUSED_HINT: &str =
    "the gateway refused the session certificate (expired, revoked or for another gateway?)";

/// The rustls error an I/O error from tokio-rustls carries, if any.
pub(super) fn rustls_error(err: &io::Error) -> Option<&rustls::Error> {
    err.get_ref()?.downcast_ref::<rustls::Error>()
}

/// Maps a failed client handshake with `gateway_addr`.
///
/// Certificate and protocol failures are final for this credential (`Refused`); a connection
/// that broke without a TLS-level reason is treated as transient (`Unreachable`).
pub(crate) fn handshake_error(gateway_addr: &str, err: &io::Error) -> TransportError {
    match rustls_error(err) {
        Some(rustls::Error::InvalidCertificate(reason)) => TransportError::refused(format!(
            "gateway certificate not trusted: {reason} (gateway {gateway_addr}; is the address \
             right and the gateway enrolled with this KMS?)"
        )),
        Some(rustls::Error::AlertReceived(alert)) => alert_error(gateway_addr, *alert),
        Some(other) => TransportError::refused(format!(
            "TLS handshake with gateway {gateway_addr} failed: {other}"
        )),
        None => TransportError::unreachable(format!(
            "connection to gateway {gateway_addr} lost during the TLS handshake: {err}"
        )),
    }
}

/// Maps an alert the gateway sent, during or right after the handshake.
pub(super) fn alert_error(gateway_addr: &str, alert: AlertDescription) -> TransportError {
    use AlertDescription as A;
    let message = match alert {
        A::CertificateRequired => {
            format!("{gateway_addr}: the gateway requires a session certificate")
        }
        A::BadCertificate
        | A::UnsupportedCertificate
        | A::CertificateRevoked
        | A::CertificateExpired
        | A::CertificateUnknown
        | A::UnknownCA
        | A::AccessDenied
        | A::DecryptError => format!("{gateway_addr}: {CERT_REFUSED_HINT} (TLS alert {alert:?})"),
        A::NoApplicationProtocol => format!(
            "{gateway_addr}: the gateway does not speak tunnel protocol {}",
            String::from_utf8_lossy(TUNNEL_ALPN)
        ),
        other => format!("{gateway_addr}: the gateway ended the connection (TLS alert {other:?})"),
    };
    TransportError::refused(message)
}

/// Rewrites an I/O error of an established tunnel when it is the gateway's late refusal (TLS
/// 1.3 delivers it on the first read), keeping every other error as it is.
///
/// The replacement has kind `PermissionDenied` and wraps [`TransportError::Refused`], so a
/// caller holding only the stream can still tell a refusal from a broken connection.
pub(super) fn late_refusal(gateway_addr: &str, err: io::Error) -> io::Error {
    match rustls_error(&err) {
        Some(rustls::Error::AlertReceived(alert)) => io::Error::new(
            io::ErrorKind::PermissionDenied,
            alert_error(gateway_addr, *alert),
        ),
        _ => err,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrapped(e: rustls::Error) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }

    #[test]
    fn untrusted_gateway_certificate_is_refused() {
        let err = wrapped(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        ));
        let mapped = handshake_error("gw:1", &err);
        assert!(
            matches!(&mapped, TransportError::Refused(m) if m.to_string().contains("not trusted"))
        );
    }

    #[test]
    fn plain_io_failure_is_transient() {
        let err = io::Error::new(io::ErrorKind::UnexpectedEof, "tls handshake eof");
        let mapped = handshake_error("gw:1", &err);
        assert!(
            matches!(&mapped, TransportError::Unreachable(m) if m.to_string().contains("gw:1"))
        );
    }

    #[test]
    fn late_alert_becomes_a_permission_error_carrying_the_refusal() {
        let err = late_refusal(
            "gw:1",
            wrapped(rustls::Error::AlertReceived(
                AlertDescription::CertificateExpired,
            )),
        );
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        let inner = err
            .get_ref()
            .and_then(|e| e.downcast_ref::<TransportError>());
        assert!(
            matches!(inner, Some(TransportError::Refused(m)) if m.to_string().contains(CERT_REFUSED_HINT))
        );

        let reset = late_refusal("gw:1", io::ErrorKind::ConnectionReset.into());
        assert_eq!(reset.kind(), io::ErrorKind::ConnectionReset);
    }
}
