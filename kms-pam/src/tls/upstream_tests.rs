//! Tests of the API server client configuration, against a local HTTPS server.

use std::time::Duration;

use super::*;
use crate::tls::test_support::handshake;
use crate::tls::LocalServingCert;

const HOUR: Duration = Duration::from_secs(3600);

#[test]
fn serde_representation_is_tagged_by_mode() {
    let cases = [
        (UpstreamTls::SystemRoots, r#"{"mode":"system_roots"}"#),
        (
            UpstreamTls::CaBundle("PEM".to_owned()),
            r#"{"mode":"ca_bundle","ca_pem":"PEM"}"#,
        ),
        (
            UpstreamTls::InsecureSkipVerify,
            r#"{"mode":"insecure_skip_verify"}"#,
        ),
    ];
    for (value, json) in cases {
        assert_eq!(serde_json::to_string(&value).unwrap(), json);
        assert_eq!(serde_json::from_str::<UpstreamTls>(json).unwrap(), value);
    }
    assert!(serde_json::from_str::<UpstreamTls>(r#"{"mode":"ca_bundle"}"#).is_err());
}

#[tokio::test]
async fn ca_bundle_trusts_its_ca_only() {
    let upstream = LocalServingCert::generate(HOUR).unwrap();
    let server = upstream.server_config().unwrap();
    let tls = UpstreamTls::CaBundle(upstream.ca_pem.clone());
    let client = upstream_client_config(&tls, UpstreamAlpn::Http2AndHttp1).unwrap();
    let (ok, _) = handshake(&client, &server, "127.0.0.1").await;
    assert_eq!(ok.unwrap().get_ref().1.alpn_protocol(), Some(&b"h2"[..]));

    let stranger = LocalServingCert::generate(HOUR).unwrap();
    let (refused, _) = handshake(&client, &stranger.server_config().unwrap(), "127.0.0.1").await;
    assert!(refused.is_err());
}

#[tokio::test]
async fn http1_only_offers_no_h2() {
    let upstream = LocalServingCert::generate(HOUR).unwrap();
    let tls = UpstreamTls::CaBundle(upstream.ca_pem.clone());
    let client = upstream_client_config(&tls, UpstreamAlpn::Http1Only).unwrap();
    assert_eq!(client.alpn_protocols, [b"http/1.1".to_vec()]);
    let (ok, _) = handshake(&client, &upstream.server_config().unwrap(), "localhost").await;
    assert_eq!(
        ok.unwrap().get_ref().1.alpn_protocol(),
        Some(&b"http/1.1"[..])
    );
}

#[tokio::test]
async fn insecure_skip_verify_accepts_an_unknown_ca_and_a_wrong_name() {
    let upstream = LocalServingCert::generate(HOUR).unwrap();
    let client =
        upstream_client_config(&UpstreamTls::InsecureSkipVerify, UpstreamAlpn::default()).unwrap();
    let (ok, server) = handshake(&client, &upstream.server_config().unwrap(), "10.9.9.9").await;
    assert!(ok.is_ok() && server.is_ok());
}

#[test]
fn ca_bundle_without_a_certificate_is_refused() {
    for bundle in ["", "garbage"] {
        let tls = UpstreamTls::CaBundle(bundle.to_owned());
        let err = upstream_client_config(&tls, UpstreamAlpn::default()).unwrap_err();
        assert!(matches!(err, TlsError::InvalidCertificate(_)), "{err}");
    }
}

#[test]
fn system_roots_load_or_say_why_not() {
    // Whether the host has a certificate store is outside the test's control; either outcome
    // must be well-formed.
    match upstream_client_config(&UpstreamTls::SystemRoots, UpstreamAlpn::default()) {
        Ok(config) => assert_eq!(
            config.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        ),
        Err(e @ TlsError::NoSystemRoots) => assert!(e.to_string().contains("system store")),
        Err(other) => panic!("unexpected error: {other}"),
    }
}
