//! A bare HTTPS/1.1 client for tests that must send what kubectl never would (malformed bodies,
//! missing tokens) and look at the raw answer.

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Sends `request` (path-only URI, e.g. `/api/v1/pods`) to `server_url` (`https://127.0.0.1:PORT`),
/// trusting `ca_pem`, over one fresh HTTP/1.1 connection, and returns the whole response.
pub async fn send_raw(
    server_url: &str,
    ca_pem: &str,
    request: Request<Full<Bytes>>,
) -> io::Result<Response<Bytes>> {
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, what.to_owned());
    let url = url::Url::parse(server_url).map_err(|_| invalid("server URL is not a URL"))?;
    let host = url
        .host_str()
        .ok_or_else(|| invalid("server URL has no host"))?
        .to_owned();
    let port = url
        .port_or_known_default()
        .ok_or_else(|| invalid("server URL has no port"))?;

    let connector = connector(ca_pem)?;
    let server_name = ServerName::try_from(host.clone()).map_err(io::Error::other)?;
    let tcp = TcpStream::connect((host.as_str(), port)).await?;
    let tls = connector.connect(server_name, tcp).await?;

    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(io::Error::other)?;
    let driver = tokio::spawn(connection);
    let mut request = request;
    if !request.headers().contains_key(http::header::HOST) {
        let authority = format!("{host}:{port}");
        if let Ok(value) = http::HeaderValue::from_str(&authority) {
            request.headers_mut().insert(http::header::HOST, value);
        }
    }
    let response = sender
        .send_request(request)
        .await
        .map_err(io::Error::other)?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(io::Error::other)?.to_bytes();
    driver.abort();
    Ok(Response::from_parts(parts, body))
}

/// A WebSocket over TLS, as [`open_websocket`] returns it.
pub type TlsWebSocket =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>>;

/// Opens a WebSocket to `target` (path and query) at `server_url`, trusting `ca_pem`, with
/// `Authorization: Bearer token` and `Sec-WebSocket-Protocol: protocols`: what a client other
/// than kubectl may offer. An answer other than `101` is an error holding the response.
pub async fn open_websocket(
    server_url: &str,
    ca_pem: &str,
    target: &str,
    token: &str,
    protocols: &str,
) -> Result<(TlsWebSocket, http::Response<Option<Vec<u8>>>), tokio_tungstenite::tungstenite::Error>
{
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = url::Url::parse(server_url).map_err(|e| io::Error::other(e.to_string()))?;
    let host = url.host_str().unwrap_or("127.0.0.1").to_owned();
    let port = url.port_or_known_default().unwrap_or(443);
    let mut request = format!("wss://{host}:{port}{target}").into_client_request()?;
    let headers = request.headers_mut();
    let bearer = http::HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|e| io::Error::other(e.to_string()))?;
    headers.insert(http::header::AUTHORIZATION, bearer);
    let offer =
        http::HeaderValue::from_str(protocols).map_err(|e| io::Error::other(e.to_string()))?;
    headers.insert(http::header::SEC_WEBSOCKET_PROTOCOL, offer);
    let connector = connector(ca_pem)?;
    let server_name = ServerName::try_from(host.clone()).map_err(io::Error::other)?;
    let tcp = TcpStream::connect((host.as_str(), port)).await?;
    let tls = connector.connect(server_name, tcp).await?;
    tokio_tungstenite::client_async(request, tls).await
}

/// A TLS connector trusting only `ca_pem`, offering HTTP/1.1.
fn connector(ca_pem: &str) -> io::Result<TlsConnector> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots
            .add(cert.map_err(io::Error::other)?)
            .map_err(io::Error::other)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}
