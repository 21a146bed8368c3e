//! KMS serving HTTPS itself (`--tls-cert`/`--tls-key`): a private CA's certificate, HTTP/2 by
//! ALPN, the files re-read when they change, and clear refusals of unusable files at start.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName};

use super::Kms;
use crate::kms::client::{KmsClient, KmsClientOptions};
use crate::server::{Server, ServerConfig, ServerError, ServerTls};
use crate::tls::UpstreamTls;

/// A private CA and the certificates it issues for KMS.
struct PrivateCa {
    params: CertificateParams,
    key: KeyPair,
    pem: String,
}

/// A server certificate and its key, PEM.
struct Leaf {
    cert: String,
    key: String,
}

impl PrivateCa {
    fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        Self { params, key, pem }
    }

    /// A certificate for `127.0.0.1` and `localhost`, valid until `not_after`.
    fn leaf(&self, not_after: SystemTime) -> Leaf {
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        params.not_before = (SystemTime::now() - Duration::from_secs(3600)).into();
        params.not_after = not_after.into();
        let key = KeyPair::generate().unwrap();
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).unwrap().pem();
        Leaf {
            cert,
            key: key.serialize_pem(),
        }
    }
}

fn in_a_year() -> SystemTime {
    SystemTime::now() + Duration::from_secs(365 * 86_400)
}

fn write(dir: &Path, leaf: &Leaf) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("kms.crt"), dir.join("kms.key"));
    std::fs::write(&cert, &leaf.cert).unwrap();
    std::fs::write(&key, &leaf.key).unwrap();
    (cert, key)
}

/// A TLS handshake with KMS offering `alpn`, trusting `ca_pem`: the protocol KMS chose and the
/// certificate it presented.
async fn handshake(kms: &Kms, ca_pem: &str, alpn: &[&[u8]]) -> (Option<Vec<u8>>, Vec<u8>) {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(crate::tls::crypto_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = tokio::net::TcpStream::connect(kms.addr).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    let (_, session) = tls.get_ref();
    let presented = session.peer_certificates().unwrap()[0].to_vec();
    (session.alpn_protocol().map(<[u8]>::to_vec), presented)
}

fn der_of(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

/// Over plain HTTP a captured request carries the API token; KMS now serves HTTPS itself with a
/// private CA's certificate, picks HTTP/2 by ALPN, and the SDK trusts that CA when told to.
#[tokio::test]
async fn kms_serves_https_with_a_private_ca_and_negotiates_h2_by_alpn() {
    let files = tempfile::tempdir().unwrap();
    let ca = PrivateCa::new();
    let (cert, key) = write(files.path(), &ca.leaf(in_a_year()));
    let kms = Kms::start_with(|c| c.with_tls(Some(ServerTls::new(&cert, &key)))).await;
    let (alpn, _) = handshake(&kms, &ca.pem, &[b"h2", b"http/1.1"]).await;
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    let (alpn, _) = handshake(&kms, &ca.pem, &[b"http/1.1"]).await;
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));

    let url = format!("https://127.0.0.1:{}", kms.addr.port());
    let options = KmsClientOptions::new().with_tls(UpstreamTls::CaBundle(ca.pem.clone()));
    let client = KmsClient::with_options(&url, Some(kms.admin.trim().into()), &options).unwrap();
    assert_eq!(client.whoami().await.unwrap().name, "admin");
    // Without the CA the client refuses KMS's certificate.
    let plain = KmsClient::new(&url, Some(kms.admin.trim().into())).unwrap();
    let err = plain.whoami().await.unwrap_err();
    assert!(err.to_string().contains("cannot reach KMS"), "{err}");
    kms.stop().await;
}

/// Certificates are rotated by replacing the files: the next handshake after the check interval
/// presents the new one, and a broken replacement keeps the previous pair serving.
#[tokio::test]
async fn a_replaced_certificate_is_served_and_a_broken_one_keeps_the_old() {
    let files = tempfile::tempdir().unwrap();
    let ca = PrivateCa::new();
    let first = ca.leaf(in_a_year());
    let (cert, key) = write(files.path(), &first);
    let tls = ServerTls::new(&cert, &key).with_reload_check(Duration::from_millis(50));
    let kms = Kms::start_with(|c| c.with_tls(Some(tls))).await;
    let (_, presented) = handshake(&kms, &ca.pem, &[b"h2"]).await;
    assert_eq!(presented, der_of(&first.cert));

    let second = ca.leaf(in_a_year());
    write(files.path(), &second);
    tokio::time::sleep(Duration::from_millis(120)).await;
    let (_, presented) = handshake(&kms, &ca.pem, &[b"h2"]).await;
    assert_eq!(presented, der_of(&second.cert), "the new certificate");

    // A key that is not the certificate's, then a certificate file cut short: neither is served.
    let third = ca.leaf(in_a_year());
    std::fs::write(&cert, &third.cert).unwrap();
    tokio::time::sleep(Duration::from_millis(120)).await;
    let (_, presented) = handshake(&kms, &ca.pem, &[b"h2"]).await;
    assert_eq!(presented, der_of(&second.cert), "mismatched pair: old kept");
    std::fs::write(&cert, &third.cert[..40]).unwrap();
    std::fs::write(&key, &third.key).unwrap();
    tokio::time::sleep(Duration::from_millis(120)).await;
    let (_, presented) = handshake(&kms, &ca.pem, &[b"h2"]).await;
    assert_eq!(
        presented,
        der_of(&second.cert),
        "broken certificate: old kept"
    );
    // Fixed: served.
    std::fs::write(&cert, &third.cert).unwrap();
    tokio::time::sleep(Duration::from_millis(120)).await;
    let (_, presented) = handshake(&kms, &ca.pem, &[b"h2"]).await;
    assert_eq!(presented, der_of(&third.cert));
    kms.stop().await;
}

/// Each unusable pair is refused at start with a sentence saying what is wrong.
#[tokio::test]
async fn unusable_tls_files_are_refused_at_start_saying_why() {
    let files = tempfile::tempdir().unwrap();
    let ca = PrivateCa::new();
    let good = ca.leaf(in_a_year());
    let other = ca.leaf(in_a_year());
    let expired = ca.leaf(SystemTime::now() - Duration::from_secs(60));
    let dir = files.path();
    let put = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let cert = put("good.crt", &good.cert);
    let key = put("good.key", &good.key);
    let cases: Vec<(PathBuf, PathBuf, &str)> = vec![
        (dir.join("missing.crt"), key.clone(), "cannot read"),
        (
            put("empty.crt", "not pem"),
            key.clone(),
            "no PEM certificate",
        ),
        (
            cert.clone(),
            put("empty.key", "not pem"),
            "no PEM private key",
        ),
        (
            cert.clone(),
            put("other.key", &other.key),
            "not the certificate's",
        ),
        (
            put("expired.crt", &expired.cert),
            put("expired.key", &expired.key),
            "expired on",
        ),
    ];
    for (cert, key, says) in cases {
        let config =
            ServerConfig::new(dir.join("data")).with_tls(Some(ServerTls::new(&cert, &key)));
        let err = Server::open(config).await.unwrap_err();
        assert!(
            matches!(err, ServerError::TlsFiles { .. }),
            "{}: {err:?}",
            cert.display()
        );
        let text = err.to_string();
        assert!(text.contains(says), "{says}: {text}");
        assert!(text.contains("--tls-cert"), "{text}");
        assert!(
            !dir.join("data").exists(),
            "nothing created before the check"
        );
    }
    let config = ServerConfig::new(dir.join("data")).with_tls(Some(ServerTls::new(&cert, &key)));
    assert!(Server::open(config).await.is_ok());
}
