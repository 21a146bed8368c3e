//! The outbound HTTP(S) client, built in one place: hyper-util's pooled client over hyper-rustls
//! with a [`UpstreamTls`] policy, and the classification of its failures into a
//! [`ConnectionFailure`] that callers branch on (instead of searching the message for "timed out").
//!
//! The KMS client and the gateway's API server client (`proxy::upstream`, with its own pool
//! settings in `ClientSettings`) are both built here.

use std::error::Error as StdError;
use std::io;
use std::time::Duration;

use http_body::Body;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::tls::{crypto_provider, upstream_client_config, TlsError, UpstreamAlpn, UpstreamTls};

/// A pooled client for `http://` and `https://` URLs.
pub(crate) type HttpsClient<B> = Client<HttpsConnector<HttpConnector>, B>;

/// How a client connects and pools. `Default`: verify against the system roots, offer HTTP/2
/// and HTTP/1.1, 10 s to connect, hyper-util's pool defaults.
#[derive(Clone, Debug)]
pub(crate) struct ClientSettings {
    /// How to verify `https://` servers; `None` for a client that only ever speaks plain
    /// `http://` (no roots are loaded, and an `https://` URL cannot be verified).
    pub(crate) tls: Option<UpstreamTls>,
    /// The HTTP versions offered through ALPN.
    pub(crate) alpn: UpstreamAlpn,
    /// How long to wait for the TCP connection.
    pub(crate) connect_timeout: Duration,
    /// Idle pooled connections close after this; `None` keeps hyper-util's default.
    pub(crate) pool_idle_timeout: Option<Duration>,
    /// HTTP/2 stream and connection windows; `None` keeps hyper's defaults.
    pub(crate) http2_windows: Option<(u32, u32)>,
    /// Refuse `http://` URLs (the gateway's upstream: a token must never cross in cleartext).
    pub(crate) https_only: bool,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            tls: Some(UpstreamTls::SystemRoots),
            alpn: UpstreamAlpn::Http2AndHttp1,
            connect_timeout: Duration::from_secs(10),
            pool_idle_timeout: None,
            http2_windows: None,
            https_only: false,
        }
    }
}

/// Builds a pooled client. Fails only when the TLS material is unusable (a bad CA bundle, no
/// system roots).
pub(crate) fn https_client<B>(settings: &ClientSettings) -> Result<HttpsClient<B>, TlsError>
where
    B: Body + Send + 'static,
    B::Data: Send,
{
    let tls = match &settings.tls {
        Some(policy) => {
            let mut config = (*upstream_client_config(policy, settings.alpn)?).clone();
            // hyper-rustls sets ALPN itself from the HTTP versions enabled below, and refuses a
            // config that already has some.
            config.alpn_protocols.clear();
            config
        }
        None => rustls::ClientConfig::builder_with_provider(crypto_provider())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Rustls)?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
    };
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(settings.connect_timeout));
    let builder = HttpsConnectorBuilder::new().with_tls_config(tls);
    let builder = if settings.https_only {
        builder.https_only()
    } else {
        builder.https_or_http()
    };
    let connector = match settings.alpn {
        UpstreamAlpn::Http1Only => builder.enable_http1().wrap_connector(http),
        UpstreamAlpn::Http2AndHttp1 => builder.enable_http1().enable_http2().wrap_connector(http),
    };
    let mut client = Client::builder(TokioExecutor::new());
    // hyper-util applies an idle timeout (its default 90 s, or ours) only with a pool timer;
    // without one an idle connection stays open until the server closes it.
    client.pool_timer(TokioTimer::new());
    if let Some(idle) = settings.pool_idle_timeout {
        client.pool_idle_timeout(idle);
    }
    if let Some((stream, connection)) = settings.http2_windows {
        client
            .http2_initial_stream_window_size(stream)
            .http2_initial_connection_window_size(connection);
    }
    Ok(client.build(connector))
}

/// Why a server could not be reached, as far as the error's causes tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConnectionFailure {
    /// No answer in time: the connection, the handshake or the answer took too long.
    Timeout,
    /// Nothing listens there (connection refused).
    Refused,
    /// The connection was reset, aborted or cut before the answer was complete.
    Reset,
    /// The TLS handshake failed: a certificate that does not verify, no common protocol.
    Tls,
    /// Anything else: no route, a name that does not resolve, a protocol error.
    Other,
}

impl ConnectionFailure {
    /// Classifies an error by its causes, and says it in a few words: the common socket failures
    /// plainly (`connection refused`), others as their causes joined, because hyper's own
    /// top-level messages ("client error (Connect)") say nothing a person can act on.
    pub(crate) fn of(error: &(dyn StdError + 'static)) -> (Self, String) {
        let mut kind = Self::Other;
        let mut current = Some(error);
        while let Some(e) = current {
            if let Some(found) = Self::of_one(e) {
                if let Some(plain) = found.plain() {
                    return (found, plain.to_owned());
                }
                kind = found;
            }
            current = e.source();
        }
        (kind, causes(error))
    }

    fn of_one(error: &(dyn StdError + 'static)) -> Option<Self> {
        if let Some(io) = error.downcast_ref::<io::Error>() {
            let inner = io.get_ref().map(|e| e as &(dyn StdError + 'static));
            if inner.is_some_and(|e| e.downcast_ref::<rustls::Error>().is_some()) {
                return Some(Self::Tls);
            }
            return match io.kind() {
                io::ErrorKind::ConnectionRefused => Some(Self::Refused),
                io::ErrorKind::TimedOut => Some(Self::Timeout),
                io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::UnexpectedEof => Some(Self::Reset),
                _ => None,
            };
        }
        if error.downcast_ref::<rustls::Error>().is_some() {
            return Some(Self::Tls);
        }
        if let Some(hyper) = error.downcast_ref::<hyper::Error>() {
            if hyper.is_timeout() {
                return Some(Self::Timeout);
            }
            if hyper.is_incomplete_message() || hyper.is_closed() {
                return Some(Self::Reset);
            }
        }
        None
    }

    /// The plain words for failures whose cause needs no more detail.
    fn plain(self) -> Option<&'static str> {
        match self {
            Self::Refused => Some("connection refused"),
            Self::Timeout => Some("connection timed out"),
            Self::Reset => Some("connection reset"),
            Self::Tls | Self::Other => None,
        }
    }
}

/// The error's causes on one line, without the top-level message (unless it has no causes),
/// each said once.
fn causes(error: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = error.source();
    while let Some(e) = current {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("client error (Connect)")]
    struct Top(#[source] Middle);

    #[derive(Debug, thiserror::Error)]
    #[error("tcp connect error")]
    struct Middle(#[source] io::Error);

    fn of(e: io::Error) -> (ConnectionFailure, String) {
        ConnectionFailure::of(&Top(Middle(e)))
    }

    #[test]
    fn socket_failures_are_named_plainly() {
        assert_eq!(
            of(io::Error::from(io::ErrorKind::ConnectionRefused)),
            (ConnectionFailure::Refused, "connection refused".to_owned())
        );
        assert_eq!(
            of(io::Error::new(io::ErrorKind::TimedOut, "connect timeout")).0,
            ConnectionFailure::Timeout
        );
        assert_eq!(
            of(io::Error::from(io::ErrorKind::ConnectionReset)).0,
            ConnectionFailure::Reset
        );
    }

    #[test]
    fn tls_failures_are_told_apart_and_keep_their_reason() {
        let rustls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let (kind, detail) = of(io::Error::new(io::ErrorKind::InvalidData, rustls));
        assert_eq!(kind, ConnectionFailure::Tls);
        assert!(detail.contains("UnknownIssuer"), "{detail}");
    }

    #[test]
    fn other_failures_list_their_causes() {
        assert_eq!(
            of(io::Error::other("no route to the moon")),
            (
                ConnectionFailure::Other,
                "tcp connect error: no route to the moon".to_owned()
            )
        );
    }

    /// The pool's idle timeout is applied: an idle pooled connection is closed by the client.
    /// Before hyper-util was given a timer it never was (3,500 idle upstream connections were
    /// seen lingering for minutes after a flood). The timeout is 50 ms; the wait is generous.
    #[tokio::test]
    async fn idle_pooled_connections_are_closed_after_the_idle_timeout() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut buf).await.unwrap();
                assert!(n > 0, "the request ended early");
                request.extend_from_slice(&buf[..n]);
            }
            socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await
                .unwrap();
            // Kept alive by the server: only the client's pool can close it now.
            loop {
                if socket.read(&mut buf).await.unwrap_or(0) == 0 {
                    return;
                }
            }
        });
        let settings = ClientSettings {
            tls: None,
            alpn: UpstreamAlpn::Http1Only,
            pool_idle_timeout: Some(Duration::from_millis(50)),
            ..ClientSettings::default()
        };
        let client = https_client::<http_body_util::Empty<bytes::Bytes>>(&settings).unwrap();
        let uri: http::Uri = format!("http://{addr}/").parse().unwrap();
        let answer = client.get(uri).await.unwrap();
        assert_eq!(answer.status(), http::StatusCode::OK);
        http_body_util::BodyExt::collect(answer.into_body())
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(30), server)
            .await
            .expect("the idle pooled connection was never closed")
            .unwrap();
    }

    #[tokio::test]
    async fn builds_clients_for_each_policy() {
        let plain = ClientSettings {
            tls: None,
            ..ClientSettings::default()
        };
        assert!(https_client::<http_body_util::Full<bytes::Bytes>>(&plain).is_ok());
        let bad_bundle = ClientSettings {
            tls: Some(UpstreamTls::CaBundle("not a PEM".into())),
            alpn: UpstreamAlpn::Http1Only,
            ..ClientSettings::default()
        };
        assert!(https_client::<http_body_util::Full<bytes::Bytes>>(&bad_bundle).is_err());
    }
}
