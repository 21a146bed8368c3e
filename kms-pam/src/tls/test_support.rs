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

/// What a test's tracing subscriber wrote (`tracing::subscriber::set_default` on a
/// current-thread runtime, so only that test's tasks write here).
#[derive(Clone, Default)]
pub(crate) struct LogCapture(Arc<std::sync::Mutex<Vec<u8>>>);

impl io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl LogCapture {
    /// A subscriber writing WARN and above here, without colours.
    pub(crate) fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync {
        let writer = self.clone();
        tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::WARN)
            .finish()
    }

    /// The lines written so far that contain `needle`.
    pub(crate) fn lines_with(&self, needle: &str) -> Vec<String> {
        let bytes = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect()
    }
}
