//! The KMS CA's CSR parsing: any input as a session or gateway CSR never panics. Input starting
//! with `-` is used as PEM text; anything else is taken as DER and wrapped in PEM, so the fuzzer
//! mutates the ASN.1 itself (seeds in `seeds/csr`).
#![no_main]

use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use kms_pam::tls::{CertificateAuthority, SessionCertSpec};
use libfuzzer_sys::fuzz_target;

static CA: LazyLock<CertificateAuthority> = LazyLock::new(|| {
    CertificateAuthority::generate("fuzz CA", Duration::from_secs(3600)).expect("CA")
});

fn pem(der: &[u8]) -> String {
    use base64::Engine as _;
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

fuzz_target!(|data: &[u8]| {
    let text = if data.first() == Some(&b'-') {
        String::from_utf8_lossy(data).into_owned()
    } else {
        pem(data)
    };
    let now = SystemTime::now();
    let spec = SessionCertSpec::new("s-1".to_owned(), "gw-1".to_owned(), "alice".to_owned(), now, now + Duration::from_secs(60));
    let _ = CA.sign_session_csr(&text, &spec);
    let _ = CA.sign_gateway_csr(
        &text,
        "gw-1",
        &["gw.example".to_owned()],
        Duration::from_secs(60),
    );
});
