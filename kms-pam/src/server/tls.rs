//! KMS serving HTTPS itself (`--tls-cert`/`--tls-key`): the certificate and key files, checked at
//! start and re-read when they change ([`ReloadingCert`], a rustls certificate resolver), and the
//! rustls server configuration that offers HTTP/2 and HTTP/1.1 through ALPN (docs/operations.md).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::config::{ServerError, ServerTls, TlsFileProblem};

/// How long a TLS handshake at the KMS API may take before the connection is closed.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// When the files were last looked at, as their metadata says (modified time and length of each).
type Stamp = Option<[(SystemTime, u64); 2]>;

/// The server's certificate and key, re-read from their files when these change (looked at on a
/// handshake at most once per `check_every`). A new pair that does not load (unreadable, not PEM,
/// a key that is not the certificate's, expired) is logged and the pair in use keeps serving.
#[derive(Debug)]
pub(crate) struct ReloadingCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    check_every: Duration,
    state: Mutex<Current>,
}

#[derive(Debug)]
struct Current {
    key: Arc<CertifiedKey>,
    stamp: Stamp,
    checked: Instant,
}

impl ReloadingCert {
    /// Loads the pair, or says what is wrong with it (a start must not serve a broken pair).
    pub(crate) fn load(tls: &ServerTls) -> Result<Self, ServerError> {
        let stamp = stamp(&tls.cert, &tls.key);
        let key = load_pair(&tls.cert, &tls.key).map_err(|problem| ServerError::TlsFiles {
            cert: tls.cert.clone(),
            key: tls.key.clone(),
            problem,
        })?;
        Ok(Self {
            cert_path: tls.cert.clone(),
            key_path: tls.key.clone(),
            check_every: tls.reload_check,
            state: Mutex::new(Current {
                key: Arc::new(key),
                stamp,
                checked: Instant::now(),
            }),
        })
    }

    /// The pair to present now, after re-reading the files if they changed since the last look.
    fn current(&self) -> Arc<CertifiedKey> {
        let mut current = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if current.checked.elapsed() < self.check_every {
            return current.key.clone();
        }
        current.checked = Instant::now();
        let now = stamp(&self.cert_path, &self.key_path);
        if now == current.stamp {
            return current.key.clone();
        }
        // Looked at once per change: a broken pair is logged once, and a pair replaced file by
        // file (certificate first, key a moment later) loads when the second file lands.
        current.stamp = now;
        match load_pair(&self.cert_path, &self.key_path) {
            Ok(key) => {
                tracing::info!(cert = %self.cert_path.display(), key = %self.key_path.display(),
                    "KMS TLS certificate reloaded");
                current.key = Arc::new(key);
            }
            Err(problem) => {
                tracing::warn!(cert = %self.cert_path.display(), key = %self.key_path.display(),
                    %problem, "the changed TLS certificate or key does not load; still serving \
                    the previous pair");
            }
        }
        current.key.clone()
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The TLS configuration of the KMS API: TLS 1.2 and 1.3, no client certificates (clients
/// authenticate with tokens), ALPN `h2` then `http/1.1`, the certificate from `cert`.
pub(crate) fn server_config(cert: Arc<ReloadingCert>) -> Result<rustls::ServerConfig, ServerError> {
    let mut config = rustls::ServerConfig::builder_with_provider(crate::tls::crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ServerError::Ca(crate::tls::TlsError::Rustls(e)))?
        .with_no_client_auth()
        .with_cert_resolver(cert);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

fn stamp(cert: &Path, key: &Path) -> Stamp {
    let one = |path: &Path| {
        let meta = std::fs::metadata(path).ok()?;
        Some((meta.modified().ok()?, meta.len()))
    };
    Some([one(cert)?, one(key)?])
}

/// Reads and checks a certificate chain and its key: both PEM, the key the first certificate's,
/// that certificate within its validity period.
fn load_pair(cert_path: &Path, key_path: &Path) -> Result<CertifiedKey, TlsFileProblem> {
    let read = |path: &Path| -> Result<Vec<u8>, TlsFileProblem> {
        std::fs::read(path).map_err(|source| TlsFileProblem::Unreadable {
            path: path.to_owned(),
            source,
        })
    };
    let cert_pem = read(cert_path)?;
    let key_pem = read(key_path)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .filter_map(Result::ok)
        .collect();
    let Some(leaf) = chain.first() else {
        return Err(TlsFileProblem::NoCertificate);
    };
    check_validity(leaf)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| TlsFileProblem::NoPrivateKey)?;
    let provider = crate::tls::crypto_provider();
    let key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|_| TlsFileProblem::UnsupportedKey)?;
    let certified = CertifiedKey::new(chain, key);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(TlsFileProblem::KeyMismatch)
        }
        Err(_) => Err(TlsFileProblem::InvalidCertificate),
    }
}

fn check_validity(leaf: &CertificateDer<'_>) -> Result<(), TlsFileProblem> {
    use x509_parser::prelude::{FromDer as _, X509Certificate};
    let (_, cert) =
        X509Certificate::from_der(leaf).map_err(|_| TlsFileProblem::InvalidCertificate)?;
    let validity = cert.validity();
    let now = x509_parser::time::ASN1Time::now();
    if now > validity.not_after {
        return Err(TlsFileProblem::Expired {
            not_after: validity.not_after.to_string(),
        });
    }
    if now < validity.not_before {
        return Err(TlsFileProblem::NotYetValid {
            not_before: validity.not_before.to_string(),
        });
    }
    Ok(())
}

/// Accepts one TLS connection within [`HANDSHAKE_TIMEOUT`]; failures are the client's and are
/// logged at debug level only (anyone may connect and fail).
pub(crate) async fn accept(
    acceptor: &tokio_rustls::TlsAcceptor,
    tcp: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "KMS API TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "KMS API TLS handshake timed out");
            None
        }
    }
}
