//! The control plane of outbound-only gateways (issue 20): the reach a gateway reports in its
//! heartbeats, kept and told to CLIs when they open a session; a gateway renewing its identity
//! certificate; an organisation administrator obtaining a relay's certificate.

use std::time::{Duration, SystemTime};

use http::StatusCode;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use serde_json::{json, Value};
use x509_parser::extensions::GeneralName;

use super::Kms;
use crate::tls::test_support::LogCapture;
use crate::tls::{generate_csr, GatewayIdentity, PrivateKeyPem, RelayIdentity};

const DAY: u64 = 24 * 3600;

/// A heartbeat body at `address` with `reach` (`Null`: none, as older gateways send).
fn beat(address: &str, reach: Value) -> Value {
    if reach.is_null() {
        json!({ "address": address })
    } else {
        json!({ "address": address, "reach": reach })
    }
}

fn link(url: &str, connected: bool) -> Value {
    json!({ "url": url, "connected": connected })
}

/// A KMS with gateway `gw` (its token returned) serving resource `prod`.
async fn kms_with_gateway() -> (Kms, String) {
    let kms = Kms::start().await;
    let gateway = kms.gateway("gw").await;
    kms.resource("prod", "gw").await;
    (kms, gateway)
}

/// `GET /v1/gateways/gw` as the admin.
async fn shown(kms: &Kms) -> Value {
    kms.get("/v1/gateways/gw", &kms.admin)
        .await
        .expect(StatusCode::OK)
}

/// `(direct, relays)` of a new session's answer.
async fn session_reach(kms: &Kms) -> (Value, Value) {
    let created = kms.open_session(&kms.admin, "prod", 300).await;
    let created = created.expect(StatusCode::CREATED);
    (created["direct"].clone(), created["relays"].clone())
}

#[tokio::test]
async fn heartbeats_keep_the_gateways_reach_and_sessions_are_told_it() {
    let (kms, gateway) = kms_with_gateway().await;
    // Enrolled, and an older gateway's heartbeat (no reach): directly, no relay.
    let defaults = json!({"direct": true, "relays": []});
    assert_eq!(shown(&kms).await["reach"], defaults);
    let old = beat("127.0.0.1:8443", Value::Null);
    kms.post("/v1/gateway/heartbeat", &gateway, old.clone())
        .await
        .expect(StatusCode::OK);
    assert_eq!(shown(&kms).await["reach"], defaults);
    assert_eq!(session_reach(&kms).await, (json!(true), Value::Null));

    // Through relays only: connected ones first, then the others, each in the gateway's order.
    let relayed = json!({"direct": false, "relays": [
        link("relay-a.example:443", false),
        link("relay-b.example:443", true),
        link("[2001:db8::7]:443", false),
        link("10.0.0.9:8443", true),
    ]});
    let body = beat("gw.internal:8443", relayed.clone());
    kms.post("/v1/gateway/heartbeat", &gateway, body)
        .await
        .expect(StatusCode::OK);
    let view = shown(&kms).await;
    assert_eq!(view["reach"], relayed);
    assert_eq!(view["address"], "gw.internal:8443");
    let listed = kms
        .get("/v1/gateways", &kms.admin)
        .await
        .expect(StatusCode::OK);
    assert_eq!(listed[0]["reach"], relayed);
    let created = kms.open_session(&kms.admin, "prod", 300).await;
    let created = created.expect(StatusCode::CREATED);
    assert_eq!(created["direct"], false);
    assert_eq!(
        created["relays"],
        json!([
            "relay-b.example:443",
            "10.0.0.9:8443",
            "relay-a.example:443",
            "[2001:db8::7]:443"
        ])
    );
    assert_eq!(created["gateway_address"], "gw.internal:8443");

    // Both: direct, and a relay it is re-tunnelling to.
    let both = json!({"direct": true, "relays": [link("relay-a.example:443", false)]});
    let body = beat("gw.internal:8443", both);
    kms.post("/v1/gateway/heartbeat", &gateway, body)
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        session_reach(&kms).await,
        (json!(true), json!(["relay-a.example:443"]))
    );

    // Downgraded to a gateway that sends no reach: the defaults again.
    kms.post("/v1/gateway/heartbeat", &gateway, old)
        .await
        .expect(StatusCode::OK);
    assert_eq!(shown(&kms).await["reach"], defaults);
    assert_eq!(session_reach(&kms).await, (json!(true), Value::Null));
}

#[tokio::test]
async fn a_heartbeat_with_a_bad_reach_is_refused_and_changes_nothing() {
    let (kms, gateway) = kms_with_gateway().await;
    let kept = json!({"direct": false, "relays": [link("relay.example:443", true)]});
    let body = beat("127.0.0.1:8443", kept.clone());
    kms.post("/v1/gateway/heartbeat", &gateway, body)
        .await
        .expect(StatusCode::OK);
    let nine: Vec<Value> = (0..9)
        .map(|i| link(&format!("relay-{i}.example:443"), true))
        .collect();
    let long = format!("{}.example:443", "r".repeat(250));
    let cases = [
        (json!(nine), "at most 8 relays; this heartbeat lists 9"),
        (json!([link("relay.example", true)]), "expected host:port"),
        (json!([link("relay.example:0", true)]), "expected host:port"),
        (
            json!([link("https://relay.example:443", true)]),
            "expected host:port",
        ),
        (
            json!([link("<b>relay:443", true)]),
            "the host a DNS name or an IP address",
        ),
        (json!([link("", true)]), "expected host:port"),
        (json!([link(&long, true)]), "262 bytes long; at most 255"),
    ];
    for (relays, expected) in cases {
        let body = beat(
            "moved.example:9443",
            json!({"direct": false, "relays": relays}),
        );
        let refused = kms.post("/v1/gateway/heartbeat", &gateway, body).await;
        assert_eq!(
            (refused.status, refused.code()),
            (StatusCode::BAD_REQUEST, "invalid"),
            "{expected}: {}",
            refused.json
        );
        assert!(
            refused.message().contains(expected),
            "{}",
            refused.message()
        );
    }
    // A reach that is not the documented shape is refused by the body's reader (422).
    let body = beat("moved.example:9443", json!({"direct": "yes"}));
    let refused = kms.post("/v1/gateway/heartbeat", &gateway, body).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    let body = beat("moved.example:9443", json!({"relays": [{"url": "r:1"}]}));
    let refused = kms.post("/v1/gateway/heartbeat", &gateway, body).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    let view = shown(&kms).await;
    assert_eq!(view["reach"], kept, "a refused heartbeat changes nothing");
    assert_eq!(view["address"], "127.0.0.1:8443");
    // Eight relays of 255 bytes each are fine (labels of at most 63 bytes, as DNS wants).
    let label = "r".repeat(63);
    let most: Vec<Value> = (0..8)
        .map(|i| {
            let url = format!("{label}.{label}.{label}.{}{i}:443", "r".repeat(58));
            assert_eq!(url.len(), 255);
            link(&url, i % 2 == 0)
        })
        .collect();
    let body = beat("127.0.0.1:8443", json!({"direct": false, "relays": most}));
    kms.post("/v1/gateway/heartbeat", &gateway, body)
        .await
        .expect(StatusCode::OK);
    assert_eq!(shown(&kms).await["reach"]["relays"], json!(most));
}

/// The certificate of a PEM answer field, as DER.
fn der_of(answer: &Value, field: &str) -> Vec<u8> {
    let pem = answer[field].as_str().unwrap_or_else(|| panic!("{answer}"));
    CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

/// `(SANs as "DNS:…"/"IP:…", not_before, not_after, public key)` of a certificate.
fn certificate_facts(der: &[u8]) -> (Vec<String>, SystemTime, SystemTime, Vec<u8>) {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    let san = cert.subject_alternative_name().unwrap().unwrap();
    let names = san
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some(format!("DNS:{dns}")),
            GeneralName::IPAddress(&[a, b, c, d]) => Some(format!("IP:{a}.{b}.{c}.{d}")),
            _ => None,
        })
        .collect();
    let at = |t: i64| SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(t).unwrap());
    let validity = cert.validity();
    (
        names,
        at(validity.not_before.timestamp()),
        at(validity.not_after.timestamp()),
        cert.public_key().subject_public_key.data.to_vec(),
    )
}

fn public_key(key: &PrivateKeyPem) -> Vec<u8> {
    key.to_key_pair().unwrap().public_key_raw().to_vec()
}

#[tokio::test(flavor = "current_thread")] // The server's tasks log through this test's subscriber.
async fn a_gateway_renews_its_certificate_for_the_address_kms_holds() {
    let log = LogCapture::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let (kms, gateway) = kms_with_gateway().await;
    let renew = |csr: &str| json!({ "csr": csr });

    let (key, csr) = generate_csr("gw").unwrap();
    let renewed = kms
        .post("/v1/gateway/certificate", &gateway, renew(&csr))
        .await
        .expect(StatusCode::OK);
    assert_eq!(renewed["ca_certificate"], kms.ca_pem.as_str());
    let der = der_of(&renewed, "certificate");
    assert_eq!(GatewayIdentity::from_cert_der(&der).unwrap().name, "gw");
    let (names, not_before, not_after, cert_key) = certificate_facts(&der);
    assert_eq!(names, ["IP:127.0.0.1"], "the host it enrolled with");
    assert_eq!(cert_key, public_key(&key), "for the CSR's key");
    let days = not_after.duration_since(not_before).unwrap().as_secs() / DAY;
    assert!((365..=366).contains(&days), "{days} days, like enrollment");

    // The address moved with a heartbeat: the next certificate names the new host.
    let body = json!({"address": "gw.internal.example:8443"});
    kms.post("/v1/gateway/heartbeat", &gateway, body)
        .await
        .expect(StatusCode::OK);
    let (_key, csr) = generate_csr("gw").unwrap();
    let renewed = kms
        .post("/v1/gateway/certificate", &gateway, renew(&csr))
        .await
        .expect(StatusCode::OK);
    let (names, ..) = certificate_facts(&der_of(&renewed, "certificate"));
    assert_eq!(names, ["DNS:gw.internal.example"]);
    let lines = log.lines_with("gateway certificate renewed");
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(
        lines[1].contains("INFO") && lines[1].contains("gateway=gw"),
        "{lines:#?}"
    );
    assert!(lines[1].contains("host=gw.internal.example"), "{lines:#?}");

    // A CSR that is not one, or a garbled one, is refused saying so.
    // One base64 character of the signature changed: the self-signature no longer verifies.
    let end = (0..csr.find("-----END").unwrap() - 20)
        .rev()
        .find(|&i| csr.as_bytes()[i].is_ascii_alphanumeric())
        .unwrap();
    let flipped = if csr.as_bytes()[end] == b'A' {
        "B"
    } else {
        "A"
    };
    let garbled = format!("{}{flipped}{}", &csr[..end], &csr[end + 1..]);
    for bad in ["not a csr", garbled.as_str()] {
        let bad = kms
            .post("/v1/gateway/certificate", &gateway, renew(bad))
            .await;
        assert_eq!(
            (bad.status, bad.code()),
            (StatusCode::BAD_REQUEST, "invalid")
        );
        assert!(
            bad.message()
                .contains("invalid certificate signing request"),
            "{}",
            bad.json
        );
    }

    // Only gateways renew; a revoked one's token no longer works.
    let user = kms.user("alice", false).await;
    let as_user = kms
        .post("/v1/gateway/certificate", &user, renew(&csr))
        .await;
    assert_eq!(as_user.status, StatusCode::FORBIDDEN);
    let as_admin = kms
        .post("/v1/gateway/certificate", &kms.admin, renew(&csr))
        .await;
    assert_eq!(as_admin.status, StatusCode::FORBIDDEN);
    kms.post("/v1/gateways/gw/revoke", &kms.admin, Value::Null)
        .await
        .expect(StatusCode::OK);
    let revoked = kms
        .post("/v1/gateway/certificate", &gateway, renew(&csr))
        .await;
    assert_eq!(
        (revoked.status, revoked.code()),
        (StatusCode::UNAUTHORIZED, "unauthenticated")
    );
    assert_eq!(log.lines_with("gateway certificate renewed").len(), 2);
}

#[tokio::test(flavor = "current_thread")] // The server's tasks log through this test's subscriber.
async fn organisation_admins_obtain_relay_certificates() {
    let log = LogCapture::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let (kms, gateway) = kms_with_gateway().await;
    let (key, csr) = generate_csr("edge-1").unwrap();
    let body = |name: &str, names: Value| json!({"name": name, "names": names, "csr": csr});
    let wanted = body("edge-1", json!(["relay.example.com", "10.0.0.9"]));

    let started = SystemTime::now();
    let issued = kms
        .post("/v1/relays/certificate", &kms.admin, wanted.clone())
        .await
        .expect(StatusCode::OK);
    assert_eq!(issued["ca_certificate"], kms.ca_pem.as_str());
    let der = der_of(&issued, "certificate");
    assert_eq!(RelayIdentity::from_cert_der(&der).unwrap().name, "edge-1");
    assert!(GatewayIdentity::from_cert_der(&der).is_err());
    let (names, _, not_after, cert_key) = certificate_facts(&der);
    assert_eq!(names, ["DNS:relay.example.com", "IP:10.0.0.9"]);
    assert_eq!(cert_key, public_key(&key));
    let answered = crate::time::parse_rfc3339(issued["not_after"].as_str().unwrap());
    assert_eq!(
        answered,
        Some(not_after),
        "the answer says the certificate's expiry"
    );
    let days = not_after.duration_since(started).unwrap().as_secs() / DAY;
    assert!((89..=90).contains(&days), "{days} days");
    let lines = log.lines_with("relay certificate issued");
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].contains("INFO")
            && lines[0].contains("by=admin")
            && lines[0].contains("relay=edge-1"),
        "{lines:#?}"
    );

    // Organisation administrators only.
    let alice = kms.user("alice", false).await;
    kms.member("default", "alice", "admin").await;
    for token in [&alice, &gateway] {
        let refused = kms
            .post("/v1/relays/certificate", token, wanted.clone())
            .await;
        assert_eq!(
            (refused.status, refused.code()),
            (StatusCode::FORBIDDEN, "forbidden"),
            "{}",
            refused.json
        );
    }
    let anonymous = kms
        .call(http::Method::POST, "/v1/relays/certificate", None, wanted)
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);

    // Bad input, each with a message that says what is accepted.
    let many: Vec<String> = (0..17).map(|i| format!("r{i}.example.com")).collect();
    let mut bad_csr = body("edge-1", json!(["relay.example.com"]));
    bad_csr["csr"] = json!("not a csr");
    let cases = [
        (
            body("edge 1", json!(["relay.example.com"])),
            "invalid relay name \"edge 1\"",
        ),
        (body("", json!(["relay.example.com"])), "invalid relay name"),
        (body("edge-1", json!([])), "names is empty"),
        (body("edge-1", json!(many)), "at most 16 names; 17 given"),
        (
            body("edge-1", json!(["*.example.com"])),
            "invalid relay host name \"*.example.com\": expected a DNS name or an IP address",
        ),
        (
            body("edge-1", json!(["relay.example.com:443"])),
            "expected a DNS name or an IP address",
        ),
        (
            body("edge-1", json!(["https://relay.example.com"])),
            "expected a DNS name or an IP address",
        ),
        (
            body("edge-1", json!([""])),
            "expected a DNS name or an IP address",
        ),
        (bad_csr, "invalid certificate signing request"),
    ];
    for (request, expected) in cases {
        let refused = kms
            .post("/v1/relays/certificate", &kms.admin, request)
            .await;
        assert_eq!(
            (refused.status, refused.code()),
            (StatusCode::BAD_REQUEST, "invalid"),
            "{expected}: {}",
            refused.json
        );
        assert!(
            refused.message().contains(expected),
            "{}",
            refused.message()
        );
    }
    assert_eq!(log.lines_with("relay certificate issued").len(), 1);
}

#[tokio::test]
async fn the_console_shows_each_gateways_reach_escaped() {
    let (kms, gateway) = kms_with_gateway().await;
    kms.pending_gateway("gw-new").await;
    let reach = json!({"direct": true, "relays": [
        link("relay-a.example:443", true),
        link("relay-b.example:443", false),
    ]});
    kms.post(
        "/v1/gateway/heartbeat",
        &gateway,
        beat("127.0.0.1:8443", reach),
    )
    .await
    .expect(StatusCode::OK);
    let cookie = super::console::sign_in(&kms, &kms.admin).await;
    let gateways = || async {
        let page = super::console::page(
            &kms,
            http::Method::GET,
            "/gateways",
            Some(&cookie),
            &[],
            None,
        );
        let page = page.await;
        assert_eq!(page.status, StatusCode::OK);
        page.text
    };
    let text = gateways().await;
    assert!(text.contains("<th>Reach</th>"), "{text}");
    assert!(
        text.contains(
            "<td class=\"mono reach\">direct + relays relay-a.example:443 (up), \
             relay-b.example:443 (down)</td>"
        ),
        "{text}"
    );
    assert!(
        text.contains("<td class=\"mono reach\">—</td>"),
        "a pending gateway is reached no way yet: {text}"
    );

    // Whatever a database writer puts there is shown as text, never as markup.
    let url = format!("sqlite://{}", kms.data_dir().join("kms.db").display());
    let db = sqlx::SqlitePool::connect(&url).await.unwrap();
    let planted = json!({"direct": false, "relays": [
        {"url": "<script>alert(1)</script>:443", "connected": true}
    ]});
    sqlx::query("UPDATE gateways SET reach = $1 WHERE name = 'gw'")
        .bind(planted.to_string())
        .execute(&db)
        .await
        .unwrap();
    db.close().await;
    let text = gateways().await;
    assert!(!text.contains("<script>alert"), "{text}");
    assert!(
        text.contains("relays &lt;script&gt;alert(1)&lt;/script&gt;:443 (up)"),
        "{text}"
    );
}
