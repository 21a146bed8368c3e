//! Real TCP on 127.0.0.1 between `TlsConnector` and `TlsTunnelAcceptor`, with certificates from a
//! test KMS CA. Every wait is bounded so a regression fails instead of hanging.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

use super::*;
use crate::tls::{
    crypto_provider, generate_csr, tunnel_server_config, CertificateAuthority, PrivateKeyPem,
    SessionCertSpec, SessionKey, TUNNEL_ALPN,
};
use crate::transport::{GatewayTransport, TunnelAcceptor};

mod accept;
mod refuse;

const HOUR: Duration = Duration::from_secs(3600);
const GATEWAY: &str = "gw";
const GATEWAY_HOST: &str = "gw.test";
/// For what must happen: generous, since two cores build in parallel.
const PATIENCE: Duration = Duration::from_secs(5);
/// For what must not happen.
const QUIET: Duration = Duration::from_millis(300);
const REFUSED_CERT: &str = "refused the session certificate";

/// A KMS CA and a gateway certificate it signed for `gw.test` and 127.0.0.1.
struct Kms {
    ca: CertificateAuthority,
    gateway_cert: String,
    gateway_key: PrivateKeyPem,
}

impl Kms {
    fn new() -> Self {
        let ca = CertificateAuthority::generate("kms-pam test CA", 24 * HOUR).unwrap();
        let (gateway_key, csr) = generate_csr(GATEWAY).unwrap();
        let names = [GATEWAY_HOST.to_owned(), "127.0.0.1".to_owned()];
        let gateway_cert = ca.sign_gateway_csr(&csr, GATEWAY, &names, HOUR).unwrap();
        Self {
            ca,
            gateway_cert,
            gateway_key,
        }
    }

    fn server_config(&self) -> Arc<ServerConfig> {
        let (ca, cert, key) = (self.ca.cert_pem(), &self.gateway_cert, &self.gateway_key);
        tunnel_server_config(ca, cert, key, &[TUNNEL_ALPN]).unwrap()
    }

    /// A gateway named `gw` listening on 127.0.0.1, and its address.
    async fn gateway(&self, handshake_timeout: Duration) -> (TlsTunnelAcceptor, String) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let config = self.server_config();
        let acceptor = TlsTunnelAcceptor::with_handshake_timeout(
            listener,
            config,
            GATEWAY.to_owned(),
            handshake_timeout,
        );
        (acceptor, addr)
    }

    /// A session certificate from `issuer` for `gateway`, valid over `[from, until]`.
    fn session(
        issuer: &CertificateAuthority,
        gateway: &str,
        from: SystemTime,
        until: SystemTime,
    ) -> (String, SessionKey, SessionCertSpec) {
        let (key, csr) = SessionKey::generate().unwrap();
        let spec = SessionCertSpec {
            session_id: "s-1".to_owned(),
            gateway: gateway.to_owned(),
            user: "alice".to_owned(),
            not_before: from,
            not_after: until,
        };
        (issuer.sign_session_csr(&csr, &spec).unwrap(), key, spec)
    }

    fn connector(&self, addr: &str, cert_pem: &str, key: &PrivateKeyPem) -> TlsConnector {
        TlsConnector::from_pem(self.ca.cert_pem(), cert_pem, key, addr.to_owned()).unwrap()
    }

    fn connector_for(
        &self,
        addr: &str,
        issuer: &CertificateAuthority,
        gateway: &str,
        from: SystemTime,
        until: SystemTime,
    ) -> TlsConnector {
        let (cert, key, _) = Self::session(issuer, gateway, from, until);
        self.connector(addr, &cert, key.key_pem())
    }

    fn valid_connector(&self, addr: &str) -> TlsConnector {
        let now = SystemTime::now();
        self.connector_for(
            addr,
            &self.ca,
            GATEWAY,
            now - Duration::from_secs(60),
            now + HOUR,
        )
    }

    /// A client config trusting this CA and offering the tunnel protocol, without a certificate.
    fn anonymous_client(&self) -> ClientConfig {
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(self.ca.cert_pem().as_bytes()).unwrap())
            .unwrap();
        let mut config = ClientConfig::builder_with_provider(crypto_provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![TUNNEL_ALPN.to_vec()];
        config
    }
}

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("{what} took longer than {PATIENCE:?}"))
}

/// Connects, which must succeed even when the gateway will refuse (a TLS 1.3 client finishes its
/// handshake before the gateway's verdict), and reads once: a refused tunnel never carries data.
async fn first_read_after_connect(connector: &TlsConnector) -> io::Result<usize> {
    let mut io = within("connect", connector.connect())
        .await
        .unwrap_or_else(|e| panic!("the client handshake should complete, got {e}"));
    let mut byte = [0u8; 1];
    let read = within("first read", io.read(&mut byte)).await;
    assert!(
        !matches!(read, Ok(n) if n > 0),
        "a refused tunnel carried data"
    );
    read
}

async fn assert_nothing_accepted(acceptor: &mut TlsTunnelAcceptor) {
    if let Ok(accepted) = timeout(QUIET, acceptor.accept()).await {
        panic!("the acceptor yielded {:?}", accepted.map(|t| t.peer));
    }
}

async fn wait_for_count(
    stats: &AcceptorStats,
    what: &str,
    count: fn(&AcceptorStats) -> u64,
    expected: u64,
) {
    within(what, async {
        while count(stats) != expected {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}
