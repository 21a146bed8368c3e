//! Tests of the certificate authority.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use x509_parser::extensions::GeneralName;

use super::*;
use crate::tls::{generate_csr, GatewayIdentity, SessionIdentity, SessionKey};

const HOUR: Duration = Duration::from_secs(3600);

fn ca() -> CertificateAuthority {
    CertificateAuthority::generate("kms-pam test CA", 24 * HOUR).unwrap()
}

/// Whole seconds, as X.509 stores them.
fn whole_seconds(secs_from_now: i64) -> SystemTime {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    UNIX_EPOCH + Duration::from_secs(now.checked_add_signed(secs_from_now).unwrap())
}

pub(crate) fn spec(not_before: SystemTime, not_after: SystemTime) -> SessionCertSpec {
    SessionCertSpec {
        session_id: "0b7e6a52-5f43-4bd9-9b43-1c0a4c0e7d11".to_owned(),
        gateway: "gw-eu".to_owned(),
        user: "alice".to_owned(),
        not_before,
        not_after,
    }
}

fn der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

fn san_strings(cert_der: &[u8]) -> Vec<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).unwrap();
    let san = cert.subject_alternative_name().unwrap().unwrap();
    san.value
        .general_names
        .iter()
        .map(|name| match name {
            GeneralName::DNSName(dns) => format!("DNS:{dns}"),
            GeneralName::URI(uri) => format!("URI:{uri}"),
            GeneralName::IPAddress(&[a, b, c, d]) => {
                format!("IP:{}", std::net::Ipv4Addr::new(a, b, c, d))
            }
            GeneralName::IPAddress(ip) => {
                let octets: [u8; 16] = (*ip).try_into().unwrap();
                format!("IP:{}", std::net::Ipv6Addr::from(octets))
            }
            other => panic!("unexpected SAN {other:?}"),
        })
        .collect()
}

#[test]
fn session_certificate_carries_the_spec_identity_and_validity() {
    let ca = ca();
    let (_key, csr) = SessionKey::generate().unwrap();
    let spec = spec(whole_seconds(-10), whole_seconds(3600));
    let cert_pem = ca.sign_session_csr(&csr, &spec).unwrap();

    let identity = SessionIdentity::from_cert_der(&der(&cert_pem)).unwrap();
    assert_eq!(identity.session_id, spec.session_id);
    assert_eq!(identity.gateway, spec.gateway);
    assert_eq!(identity.user, spec.user);
    assert_eq!(identity.not_before, spec.not_before);
    assert_eq!(identity.not_after, spec.not_after);
}

#[test]
fn session_certificate_is_a_client_leaf_of_the_ca_for_the_csr_key() {
    let ca = ca();
    let (key, csr) = SessionKey::generate().unwrap();
    let cert_pem = ca
        .sign_session_csr(&csr, &spec(whole_seconds(0), whole_seconds(60)))
        .unwrap();
    let cert_der = der(&cert_pem);
    let (_, cert) = x509_parser::parse_x509_certificate(&cert_der).unwrap();
    let (_, ca_cert) = x509_parser::parse_x509_certificate(ca.cert_der()).unwrap();

    assert!(cert.verify_signature(Some(ca_cert.public_key())).is_ok());
    let kept = key.key_pem().to_key_pair().unwrap();
    assert_eq!(
        cert.public_key().subject_public_key.data.as_ref(),
        kept.public_key_raw()
    );
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth);
    assert!(!cert.is_ca());
}

#[test]
fn identity_requested_in_the_csr_is_ignored() {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["evil.example".to_owned()]).unwrap();
    params
        .subject_alt_names
        .push(SanType::URI("kms-pam://session/other".try_into().unwrap()));
    params.distinguished_name = common_name_dn("admin");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let csr = params.serialize_request(&key).unwrap().pem().unwrap();

    let spec = spec(whole_seconds(0), whole_seconds(60));
    let cert_der = der(&ca().sign_session_csr(&csr, &spec).unwrap());
    assert_eq!(
        san_strings(&cert_der),
        [
            format!("URI:kms-pam://session/{}", spec.session_id),
            "URI:kms-pam://gateway/gw-eu".to_owned()
        ]
    );
    let identity = SessionIdentity::from_cert_der(&cert_der).unwrap();
    assert_eq!(identity.user, "alice");
    let (_, cert) = x509_parser::parse_x509_certificate(&cert_der).unwrap();
    assert!(!cert.is_ca());
    assert!(
        !cert
            .extended_key_usage()
            .unwrap()
            .unwrap()
            .value
            .server_auth
    );
}

#[test]
fn csr_with_a_broken_signature_is_refused() {
    let (_key, csr) = generate_csr("tamper-me").unwrap();
    let mut der = rustls_pki_types::CertificateSigningRequestDer::from_pem_slice(csr.as_bytes())
        .unwrap()
        .as_ref()
        .to_vec();
    let at = der.windows(9).position(|w| w == b"tamper-me").unwrap();
    der[at] = b'T';
    let tampered = pem_encode("CERTIFICATE REQUEST", &der);

    let err = ca()
        .sign_session_csr(&tampered, &spec(whole_seconds(0), whole_seconds(60)))
        .unwrap_err();
    assert!(matches!(err, TlsError::InvalidCsr(_)), "{err}");
    assert!(err.to_string().contains("signature"), "{err}");
}

#[test]
fn garbage_csr_and_bad_specs_are_refused() {
    let ca = ca();
    let ok_spec = spec(whole_seconds(0), whole_seconds(60));
    let err = ca.sign_session_csr("not a csr", &ok_spec).unwrap_err();
    assert!(matches!(err, TlsError::InvalidCsr(_)));

    let (_key, csr) = SessionKey::generate().unwrap();
    let backwards = spec(whole_seconds(60), whole_seconds(0));
    assert!(ca.sign_session_csr(&csr, &backwards).is_err());
    let far = spec(
        whole_seconds(0),
        UNIX_EPOCH + Duration::from_secs(400_000_000_000),
    );
    assert!(matches!(
        ca.sign_session_csr(&csr, &far),
        Err(TlsError::Generate(_))
    ));
    let huge = Duration::from_secs(u64::MAX / 4);
    assert!(ca.issue_server_cert(&["gw.test".to_owned()], huge).is_err());
    let no_user = SessionCertSpec {
        user: String::new(),
        ..ok_spec.clone()
    };
    assert!(matches!(
        ca.sign_session_csr(&csr, &no_user),
        Err(TlsError::InvalidName(_))
    ));
    let no_gateway = SessionCertSpec {
        gateway: String::new(),
        ..ok_spec
    };
    assert!(matches!(
        ca.sign_session_csr(&csr, &no_gateway),
        Err(TlsError::InvalidName(_))
    ));
}

#[test]
fn gateway_csr_gets_a_server_certificate_naming_the_gateway() {
    let (_key, csr) = generate_csr("whatever").unwrap();
    let names = ["gw.example.com".to_owned(), "10.1.2.3".to_owned()];
    let cert_der = der(&ca().sign_gateway_csr(&csr, "gw-eu", &names, HOUR).unwrap());

    assert_eq!(
        san_strings(&cert_der),
        [
            "DNS:gw.example.com",
            "IP:10.1.2.3",
            "URI:kms-pam://gateway/gw-eu"
        ]
    );
    assert_eq!(
        GatewayIdentity::from_cert_der(&cert_der).unwrap().name,
        "gw-eu"
    );
    assert!(SessionIdentity::from_cert_der(&cert_der).is_err());
    let (_, cert) = x509_parser::parse_x509_certificate(&cert_der).unwrap();
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    // Client auth too: the gateway dials relays with the same identity.
    assert!(eku.server_auth && eku.client_auth);
}

#[test]
fn relay_csr_gets_a_server_certificate_naming_the_relay() {
    let (_key, csr) = generate_csr("whatever").unwrap();
    let names = ["relay.example.com".to_owned()];
    let cert_der = der(&ca().sign_relay_csr(&csr, "edge-1", &names, HOUR).unwrap());
    assert_eq!(
        san_strings(&cert_der),
        ["DNS:relay.example.com", "URI:kms-pam://relay/edge-1"]
    );
    let relay = crate::tls::RelayIdentity::from_cert_der(&cert_der).unwrap();
    assert_eq!(relay.name, "edge-1");
    assert!(GatewayIdentity::from_cert_der(&cert_der).is_err());
    let (_, cert) = x509_parser::parse_x509_certificate(&cert_der).unwrap();
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(
        eku.server_auth && !eku.client_auth,
        "a relay is never a client"
    );
    assert!(ca().sign_relay_csr(&csr, "", &names, HOUR).is_err());
    assert!(ca().sign_relay_csr(&csr, "edge", &[], HOUR).is_err());
}

#[test]
fn server_names_are_validated() {
    let ca = ca();
    for bad in [
        vec![],
        vec!["not a name".to_owned()],
        vec!["bad_ünicode.example".to_owned()],
    ] {
        let err = ca.issue_server_cert(&bad, HOUR).unwrap_err();
        assert!(matches!(err, TlsError::InvalidName(_)), "{bad:?}: {err}");
    }
    let issued = ca.issue_server_cert(&["::1".to_owned()], HOUR).unwrap();
    assert_eq!(san_strings(&der(&issued.cert_pem)), ["IP:::1"]);
}

#[test]
fn ca_reloads_from_pem_and_keeps_signing() {
    let original = ca();
    let reloaded =
        CertificateAuthority::from_pem(original.cert_pem(), original.key_pem().clone()).unwrap();
    assert_eq!(reloaded.cert_der(), original.cert_der());

    let issued = reloaded
        .issue_server_cert(&["gw.test".to_owned()], HOUR)
        .unwrap();
    let issued_der = der(&issued.cert_pem);
    let (_, cert) = x509_parser::parse_x509_certificate(&issued_der).unwrap();
    let (_, ca_cert) = x509_parser::parse_x509_certificate(original.cert_der()).unwrap();
    assert!(cert.verify_signature(Some(ca_cert.public_key())).is_ok());
    assert_eq!(cert.issuer(), ca_cert.subject());
}

#[test]
fn ca_refuses_a_foreign_key_or_a_leaf_certificate() {
    let ca = ca();
    let other = CertificateAuthority::generate("other", HOUR).unwrap();
    let err = CertificateAuthority::from_pem(ca.cert_pem(), other.key_pem().clone()).unwrap_err();
    assert!(matches!(err, TlsError::InvalidKey(_)), "{err}");

    let leaf = ca.issue_server_cert(&["gw.test".to_owned()], HOUR).unwrap();
    let err = CertificateAuthority::from_pem(&leaf.cert_pem, leaf.key).unwrap_err();
    assert!(matches!(err, TlsError::InvalidCertificate(_)), "{err}");
}

#[test]
fn serials_are_unique_even_for_a_reused_key() {
    let ca = ca();
    let (_key, csr) = SessionKey::generate().unwrap();
    let spec = spec(whole_seconds(0), whole_seconds(60));
    let serial = |pem: String| {
        let cert_der = der(&pem);
        let (_, cert) = x509_parser::parse_x509_certificate(&cert_der).unwrap();
        cert.raw_serial().to_vec()
    };
    let first = serial(ca.sign_session_csr(&csr, &spec).unwrap());
    let second = serial(ca.sign_session_csr(&csr, &spec).unwrap());
    assert_ne!(first, second);
}

#[test]
fn debug_redacts_the_ca_key() {
    let debug = format!("{:?}", ca());
    assert!(debug.contains("[redacted]") && !debug.contains("PRIVATE KEY"));
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|chunk| std::str::from_utf8(chunk).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}
