//! CSR parsing at the KMS CA (session and gateway enrollment): any text never panics, and a
//! changed CSR never yields a certificate for a key other than the requester's.

use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use proptest::prelude::*;

use super::check;
use crate::tls::{generate_csr, CertificateAuthority, SessionCertSpec};

struct Fixture {
    ca: CertificateAuthority,
    csr_der: Vec<u8>,
    /// The requester's public key, as the CSR states it (SubjectPublicKeyInfo bit string).
    key: Vec<u8>,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let ca = CertificateAuthority::generate("fuzz CA", Duration::from_secs(3600))
        .unwrap_or_else(|e| panic!("{e}"));
    let (_key, pem) = generate_csr("gw.example").unwrap_or_else(|e| panic!("{e}"));
    let csr_der = pem_body(&pem).unwrap_or_else(|| panic!("CSR PEM"));
    let key = spki_of_csr(&csr_der).unwrap_or_else(|| panic!("CSR key"));
    Fixture { ca, csr_der, key }
});

fn pem_body(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

fn pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
        lines.join("\n")
    )
}

fn spki_of_csr(der: &[u8]) -> Option<Vec<u8>> {
    use x509_parser::prelude::FromDer;
    let (_, csr) =
        x509_parser::certification_request::X509CertificationRequest::from_der(der).ok()?;
    Some(
        csr.certification_request_info
            .subject_pki
            .subject_public_key
            .data
            .to_vec(),
    )
}

fn spki_of_cert(pem: &str) -> Option<Vec<u8>> {
    let der = pem_body(pem)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
    Some(cert.public_key().subject_public_key.data.to_vec())
}

/// Signs `csr` both ways the KMS does; the certificates it got.
fn sign(csr: &str) -> Vec<String> {
    let fixture = &*FIXTURE;
    let now = SystemTime::now();
    let spec = SessionCertSpec {
        session_id: "s-1".to_owned(),
        gateway: "gw-1".to_owned(),
        user: "alice".to_owned(),
        not_before: now,
        not_after: now + Duration::from_secs(60),
    };
    let session = fixture.ca.sign_session_csr(csr, &spec);
    let gateway = fixture.ca.sign_gateway_csr(
        csr,
        "gw-1",
        &["gw.example".to_owned()],
        Duration::from_secs(60),
    );
    [session, gateway]
        .into_iter()
        .filter_map(Result::ok)
        .collect()
}

#[derive(Clone, Debug)]
enum Change {
    Flip(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
}

fn changes() -> impl Strategy<Value = Vec<Change>> {
    let one = prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(at, bits)| Change::Flip(at, bits)),
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Change::Insert(at, b)),
        any::<usize>().prop_map(Change::Delete),
        any::<usize>().prop_map(Change::Truncate),
    ];
    prop::collection::vec(one, 1..4)
}

#[test]
fn a_changed_csr_is_refused_or_certifies_only_the_requesters_key() {
    check("csr (changed DER)", changes(), |changes| {
        let fixture = &*FIXTURE;
        let mut der = fixture.csr_der.clone();
        for change in &changes {
            let len = der.len();
            match *change {
                Change::Flip(at, bits) if len > 0 => der[at % len] ^= bits,
                Change::Insert(at, b) => der.insert(at % (len + 1), b),
                Change::Delete(at) if len > 0 => {
                    der.remove(at % len);
                }
                Change::Truncate(at) => der.truncate(at % (len + 1)),
                _ => {}
            }
        }
        for cert in sign(&pem(&der)) {
            prop_assert_eq!(spki_of_cert(&cert), Some(fixture.key.clone()));
        }
        Ok(())
    });
}

#[test]
fn any_text_as_a_csr_never_panics() {
    let text = prop_oneof![
        any::<String>(),
        prop::collection::vec(any::<u8>(), 0..300).prop_map(|bytes| pem(&bytes)),
        "-----BEGIN CERTIFICATE REQUEST-----\n[A-Za-z0-9+/=\n]{0,200}\n-----END CERTIFICATE REQUEST-----\n",
        "(-----BEGIN [A-Z ]{0,20}-----\n[A-Za-z0-9+/=]{0,80}\n-----END [A-Z ]{0,20}-----\n){0,3}",
    ];
    check("csr (text)", text, |text| {
        let _ = sign(&text);
        Ok(())
    });
}
