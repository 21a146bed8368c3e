//! Issue 15 points 3 and 7: trust kubectl accepts (a self-signed CA certificate given as the
//! resource's CA bundle), TLS failures as sentences naming the resource, no plain HTTP, all
//! through the gateway's real upstream client against a local rustls server.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{Request, StatusCode};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair};
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::*;
use crate::credential::Upstream;
use crate::proxy::{body, PooledConnector, UpstreamConnector};
use crate::tls::test_support::{handshake, LogCapture};
use crate::tls::{upstream_client_config, LocalServingCert, UpstreamAlpn};

/// What `openssl req -x509 -subj /CN=kube` makes: self-signed, basicConstraints CA:TRUE.
struct SelfSignedCa {
    pem: String,
    key: KeyPair,
}

fn self_signed_ca(names: &[&str], not_after: SystemTime) -> SelfSignedCa {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "kube-apiserver (lab)");
    params.distinguished_name = dn;
    params.not_before = (SystemTime::now() - DAY * 2).into();
    params.not_after = not_after.into();
    let cert = params.self_signed(&key).unwrap();
    SelfSignedCa {
        pem: cert.pem(),
        key,
    }
}

const DAY: Duration = Duration::from_secs(24 * 3600);

fn in_a_year() -> SystemTime {
    SystemTime::now() + DAY * 365
}

fn server_config(cert_pem: &str, key_pem: &str) -> Arc<ServerConfig> {
    let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    Arc::new(
        ServerConfig::builder_with_provider(crate::tls::crypto_provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap(),
    )
}

/// An HTTPS server on 127.0.0.1 answering every request `200 ok`; its base URL.
async fn serve(config: Arc<ServerConfig>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let acceptor = TlsAcceptor::from(config);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = service_fn(|_request| async {
                    Ok::<_, std::convert::Infallible>(http::Response::new(body::full("ok")))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    url
}

/// A GET through the gateway's upstream client for resource `prod`. A failure to reach the
/// server answers one generic 502 naming an error id (issue 28 point 6); what happened is the
/// gateway's log line with that id, which is returned.
async fn get(url: &str, tls: UpstreamTls) -> Result<StatusCode, String> {
    let log = LogCapture::default();
    let _guard = tracing::subscriber::set_default(log.subscriber());
    let upstream = Upstream {
        url: url.parse().unwrap(),
        tls,
    };
    let client = PooledConnector::new()
        .connect("prod", &upstream)
        .map_err(|e| e.to_string())?;
    let request = Request::builder()
        .uri("/version")
        .body(body::empty())
        .unwrap();
    let response = client.send(request, false).await.map_err(|e| {
        assert_eq!(e.status(), StatusCode::BAD_GATEWAY);
        let id = e.message().rsplit(' ').next().unwrap_or_default();
        assert_eq!(e.message(), crate::proxy::unreachable_message(id));
        let lines = log.lines_with(&format!("error_id={id}"));
        assert_eq!(lines.len(), 1, "{lines:?}");
        // `… WARN kms_pam::proxy::upstream: MESSAGE error_id=… resource=… upstream=…`
        let line = lines[0].split_once("upstream: ").map_or("", |(_, m)| m);
        line.split(" error_id=")
            .next()
            .unwrap_or_default()
            .to_owned()
    })?;
    Ok(response.status())
}

#[tokio::test]
async fn a_self_signed_ca_certificate_given_as_the_bundle_is_trusted_like_kubectl_does() {
    let ca = self_signed_ca(&["127.0.0.1", "localhost"], in_a_year());
    let url = serve(server_config(&ca.pem, &ca.key.serialize_pem())).await;
    let status = get(&url, UpstreamTls::CaBundle(ca.pem.clone())).await;
    assert_eq!(status, Ok(StatusCode::OK));

    // Listed or not, the name must match.
    let client = upstream_client_config(
        &UpstreamTls::CaBundle(ca.pem.clone()),
        UpstreamAlpn::default(),
    )
    .unwrap();
    let server = server_config(&ca.pem, &ca.key.serialize_pem());
    let (ok, _) = handshake(&client, &server, "localhost").await;
    assert!(ok.is_ok());
    let (wrong_name, _) = handshake(&client, &server, "10.9.9.9").await;
    let err = wrong_name.unwrap_err();
    let message = explain_upstream_tls_error(&err, "prod", &UpstreamTls::CaBundle(ca.pem)).unwrap();
    assert!(
        message.contains("does not name the host") && message.contains("prod"),
        "{message}"
    );
}

#[tokio::test]
async fn a_listed_certificate_that_expired_is_refused_with_its_date() {
    let expired = self_signed_ca(&["127.0.0.1"], SystemTime::now() - DAY);
    let url = serve(server_config(&expired.pem, &expired.key.serialize_pem())).await;
    let err = get(&url, UpstreamTls::CaBundle(expired.pem.clone()))
        .await
        .unwrap_err();
    assert!(
        err.contains("resource prod has expired (valid until 20"),
        "{err}"
    );
}

#[tokio::test]
async fn tls_failures_name_the_resource_and_what_to_change() {
    let lab = self_signed_ca(&["127.0.0.1"], in_a_year());
    let other = self_signed_ca(&["127.0.0.1"], in_a_year());
    let self_signed_url = serve(server_config(&lab.pem, &lab.key.serialize_pem())).await;
    let err = get(&self_signed_url, UpstreamTls::CaBundle(other.pem.clone()))
        .await
        .unwrap_err();
    assert!(
        err.contains(
            "the API server's certificate for resource prod is self-signed and not in \
                      the resource's CA bundle"
        ),
        "{err}"
    );

    let signed = LocalServingCert::generate(Duration::from_secs(3600)).unwrap();
    let signed_url = serve(signed.server_config().unwrap()).await;
    let err = get(&signed_url, UpstreamTls::CaBundle(other.pem.clone()))
        .await
        .unwrap_err();
    assert!(
        err.starts_with(
            "the API server's certificate is not signed by the CA configured for resource prod; \
             recreate the resource with --ca-cert"
        ),
        "{err}"
    );
    // The right CA still works, and the message names no token or key.
    assert_eq!(
        get(&signed_url, UpstreamTls::CaBundle(signed.ca_pem.clone())).await,
        Ok(StatusCode::OK)
    );
}

#[tokio::test]
async fn plain_http_is_never_used_for_the_token() {
    let err = get("http://127.0.0.1:1", UpstreamTls::SystemRoots)
        .await
        .unwrap_err();
    assert!(err.contains("only over https://"), "{err}");
}

/// A self-signed (not CA) certificate for 127.0.0.1, as `adjust` changes the usual parameters.
fn listed_cert(adjust: impl FnOnce(&mut CertificateParams)) -> (String, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    params.not_before = (SystemTime::now() - DAY).into();
    params.not_after = in_a_year().into();
    adjust(&mut params);
    (params.self_signed(&key).unwrap().pem(), key)
}

#[tokio::test]
async fn a_listed_certificate_not_valid_yet_or_not_for_servers_is_refused_saying_why() {
    let (future, key) = listed_cert(|p| p.not_before = (SystemTime::now() + DAY).into());
    let url = serve(server_config(&future, &key.serialize_pem())).await;
    let err = get(&url, UpstreamTls::CaBundle(future)).await.unwrap_err();
    assert!(
        err.contains("resource prod is not valid yet (valid from 20")
            && err.contains("check the clocks"),
        "{err}"
    );

    let (client_only, key) = listed_cert(|p| {
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    });
    let url = serve(server_config(&client_only, &key.serialize_pem())).await;
    let err = get(&url, UpstreamTls::CaBundle(client_only))
        .await
        .unwrap_err();
    assert!(
        err.contains("resource prod is not issued for TLS servers (extended key usage)"),
        "{err}"
    );
}

#[tokio::test]
async fn system_roots_and_a_ca_certificate_served_as_the_servers_have_their_own_sentences() {
    let signed = LocalServingCert::generate(Duration::from_secs(3600)).unwrap();
    let url = serve(signed.server_config().unwrap()).await;
    let err = get(&url, UpstreamTls::SystemRoots).await.unwrap_err();
    assert!(
        err.contains("resource prod is not signed by a CA the gateway's system trusts"),
        "{err}"
    );

    // A CA certificate for 127.0.0.1, signed by the bundle's CA but not itself in the bundle.
    let root_key = KeyPair::generate().unwrap();
    let mut root = CertificateParams::new(Vec::<String>::new()).unwrap();
    root.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    root.distinguished_name.push(DnType::CommonName, "lab root");
    let root_pem = root.self_signed(&root_key).unwrap().pem();
    let issuer = rcgen::Issuer::from_params(&root, &root_key);
    let (_, served_key) = listed_cert(|_| {});
    let mut ca_as_server = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    ca_as_server.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_as_server
        .distinguished_name
        .push(DnType::CommonName, "lab intermediate");
    let served = ca_as_server.signed_by(&served_key, &issuer).unwrap().pem();
    let url = serve(server_config(&served, &served_key.serialize_pem())).await;
    let err = get(&url, UpstreamTls::CaBundle(root_pem))
        .await
        .unwrap_err();
    assert!(
        err.contains("resource prod is a CA certificate")
            && err.contains("--ca-cert set to that certificate"),
        "{err}"
    );
}
