//! Issue 28 point 6: whoever holds a session cannot tell through the gateway a closed port from
//! a plain-HTTP port from a TLS port with a certificate it does not trust; the gateway's log
//! tells its operator which, under the error id the answer names. Real listeners on 127.0.0.1,
//! the gateway's real upstream client.

use std::sync::Arc;

use http::{Request, StatusCode};
use rcgen::{CertificateParams, KeyPair};
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::*;
use crate::credential::Upstream;
use crate::tls::test_support::LogCapture;

/// A port nothing listens on.
async fn closed_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("https://{addr}")
}

/// A plain HTTP/1.1 server: whatever it reads, it answers `400`.
async fn plain_http_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = tcp.read(&mut buf).await;
                let _ = tcp
                    .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                    .await;
            });
        }
    });
    format!("https://{addr}")
}

/// A TLS server whose self-signed certificate the configured bundle does not hold.
async fn untrusted_tls_port() -> String {
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let certs = CertificateDer::pem_slice_iter(cert.pem().as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap();
    let config = ServerConfig::builder_with_provider(crate::tls::crypto_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = acceptor.accept(tcp).await;
            });
        }
    });
    format!("https://{addr}")
}

/// Another CA's certificate: what the resource was told to trust.
fn other_ca() -> UpstreamTls {
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["elsewhere".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    UpstreamTls::CaBundle(cert.pem())
}

/// The failure answered for a GET to `url`, and the gateway's log line with its error id.
async fn failure(url: &str, log: &LogCapture) -> (StatusCode, String, String) {
    let upstream = Upstream::new(url.parse().unwrap(), other_ca());
    let client = PooledConnector::new().connect("prod", &upstream).unwrap();
    let request = Request::builder()
        .uri("/api/v1/namespaces/default/pods")
        .body(body::empty())
        .unwrap();
    let Err(error) = client.send(request, false).await else {
        panic!("{url} answered");
    };
    let id = error
        .message()
        .rsplit(' ')
        .next()
        .unwrap_or_default()
        .to_owned();
    let lines = log.lines_with(&format!("error_id={id}"));
    assert_eq!(lines.len(), 1, "{url}: one log line per failure: {lines:?}");
    let message = error.message().replace(&id, "ID");
    (error.status(), message, lines[0].clone())
}

#[tokio::test]
async fn closed_plain_and_untrusted_tls_ports_look_the_same_to_the_client() {
    let log = LogCapture::default();
    let _guard = tracing::subscriber::set_default(log.subscriber());
    let closed = failure(&closed_port().await, &log).await;
    let plain = failure(&plain_http_port().await, &log).await;
    let tls = failure(&untrusted_tls_port().await, &log).await;
    // Fails before this change: "… is unreachable: … Connection refused", "TLS with the API
    // server of resource prod failed (… InvalidContentType)" and "the API server's certificate
    // for resource prod is self-signed …" told them apart.
    let expected = (
        StatusCode::BAD_GATEWAY,
        "the gateway could not reach the resource's API server; its operator can see why in the \
         gateway's log, error id ID"
            .to_owned(),
    );
    for (what, (status, message, _)) in [("closed", &closed), ("plain", &plain), ("tls", &tls)] {
        assert_eq!((*status, message.clone()), expected, "{what}");
    }
    // The operator sees what happened.
    assert!(closed.2.contains("is unreachable"), "{}", closed.2);
    assert!(closed.2.contains("resource=prod"), "{}", closed.2);
    assert!(plain.2.contains("InvalidContentType"), "{}", plain.2);
    assert!(
        tls.2.contains(
            "the API server's certificate for resource prod is self-signed and not in the \
             resource's CA bundle"
        ),
        "{}",
        tls.2
    );
    assert_ne!(closed.2, plain.2);
}
