//! Test helpers: real TLS handshakes over an in-memory pipe.

use std::io;
use std::sync::Arc;

use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::ServerName;
use tokio::io::DuplexStream;
use tokio_rustls::{client, server, TlsAcceptor, TlsConnector};

/// Runs both sides of a handshake over `tokio::io::duplex` and returns each side's outcome.
///
/// In TLS 1.3 the client finishes before the server has judged its certificate, so a refused
/// client certificate shows up as an error on the server side only.
pub(crate) async fn handshake(
    client: &Arc<ClientConfig>,
    server: &Arc<ServerConfig>,
    server_name: &str,
) -> (
    io::Result<client::TlsStream<DuplexStream>>,
    io::Result<server::TlsStream<DuplexStream>>,
) {
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let name = ServerName::try_from(server_name.to_owned()).expect("test server name");
    let connector = TlsConnector::from(Arc::clone(client));
    let acceptor = TlsAcceptor::from(Arc::clone(server));
    tokio::join!(
        connector.connect(name, client_io),
        acceptor.accept(server_io)
    )
}
