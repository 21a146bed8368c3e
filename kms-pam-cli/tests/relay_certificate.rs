//! `kms-pam relay certificate` against a real `kms-pam server` (issue 20): the relay's key is
//! made here, KMS signs it for the relay's name and hosts, and the key, the certificate and the
//! KMS CA land in `--out` with the modes a private key and public certificates want. And `gateway
//! list` says how the real gateway is reached.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use kms_pam::tls::{tunnel_server_config, PrivateKeyPem, RelayIdentity};

use crate::support::org::Org;
use crate::support::world::sqlite;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The relay in `dir`: its name, after checking that the key is the certificate's and that the
/// CA parses, as a relay will load them.
fn relay_in(dir: &Path) -> (String, Vec<u8>) {
    let (key, cert, ca) = (
        read(&dir.join("relay.key")),
        read(&dir.join("relay.crt")),
        read(&dir.join("kms-ca.crt")),
    );
    tunnel_server_config(&ca, &cert, &PrivateKeyPem::new(key), &[b"h2"])
        .expect("the key matches the certificate");
    let der = pem_der(&cert);
    let name = RelayIdentity::from_cert_der(&der)
        .expect("a relay certificate")
        .name;
    (name, der)
}

/// The DER of the first certificate of a PEM text.
fn pem_der(pem: &str) -> Vec<u8> {
    use base64::Engine as _;
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("base64")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_certificate_writes_a_key_only_its_owner_reads_and_a_certificate_kms_signed() {
    let org = Org::start().await;
    let out = org.root.path().join("relay").join("edge-1");
    let out_arg = out.to_str().unwrap();
    let args = [
        "relay",
        "certificate",
        "--name",
        "edge-1",
        "--host",
        "relay.example.com",
        "--host",
        "10.0.0.9",
        "--out",
        out_arg,
    ];
    let printed = org.ok(&org.admin, &args).await;
    for part in [
        "Relay edge-1 certified for relay.example.com, 10.0.0.9, valid until ",
        &format!("{out_arg}/relay.key  its private key (mode 0600"),
        &format!("{out_arg}/relay.crt  its certificate"),
        &format!("{out_arg}/kms-ca.crt  the KMS CA"),
    ] {
        assert!(printed.contains(part), "{part:?} in {printed}");
    }
    assert_eq!(mode(&out), 0o700, "created private");
    assert_eq!(mode(&out.join("relay.key")), 0o600);
    assert_eq!(mode(&out.join("relay.crt")), 0o644);
    assert_eq!(mode(&out.join("kms-ca.crt")), 0o644);
    let (name, der) = relay_in(&out);
    assert_eq!(name, "edge-1");
    assert!(
        der.windows(17).any(|w| w == b"relay.example.com"),
        "DNS SAN"
    );
    assert!(der.windows(4).any(|w| w == [10, 0, 0, 9]), "IP SAN");
    let db = org.root.path().join("kms-data").join("kms.db");
    let ca = sqlite(&db, "SELECT value FROM kms_settings WHERE name = 'ca_cert'");
    assert_eq!(
        read(&out.join("kms-ca.crt")).trim(),
        ca.trim(),
        "the KMS CA"
    );
    let first_key = read(&out.join("relay.key"));
    assert!(
        !printed.contains("PRIVATE KEY") && !printed.contains(first_key.trim()),
        "the key is never printed"
    );

    // Again, into the same directory: a new key and certificate replace the old ones.
    let json = org.json(&org.admin, &args).await;
    let not_after = kms_pam::time::parse_rfc3339(json["not_after"].as_str().unwrap()).unwrap();
    let days = not_after
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO)
        .as_secs()
        / 86_400;
    assert!((89..=90).contains(&days), "{days} days: {json}");
    assert_eq!(json["relay"], "edge-1");
    assert_eq!(json["key"], format!("{out_arg}/relay.key"));
    assert_ne!(read(&out.join("relay.key")), first_key, "a new key");
    assert_eq!(mode(&out.join("relay.key")), 0o600);
    assert_eq!(relay_in(&out).0, "edge-1");

    // KMS's refusals are one line each, and nothing is written.
    let bob = org.user("bob").await;
    let elsewhere = org.root.path().join("refused");
    let refused = |name: &str, host: &str| {
        [
            "relay",
            "certificate",
            "--name",
            name,
            "--host",
            host,
            "--out",
            elsewhere.to_str().unwrap(),
        ]
        .map(str::to_owned)
    };
    let cases = [
        (&bob, refused("edge-2", "relay.example.com"), "(forbidden)"),
        (
            &org.admin,
            refused("edge 2", "relay.example.com"),
            "invalid relay name \"edge 2\"",
        ),
        (
            &org.admin,
            refused("edge-2", "*.example.com"),
            "expected a DNS name or an IP address",
        ),
    ];
    for (token, args, expected) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = org.run(token, &args).await;
        assert_eq!(run.code, Some(1), "{}", run.stderr);
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
        assert!(run.stderr.contains(expected), "{expected}: {}", run.stderr);
    }
    assert!(!elsewhere.exists(), "nothing written after a refusal");
    // A host is required (a usage error, before KMS is asked).
    let run = org
        .run(
            &org.admin,
            &["relay", "certificate", "--name", "e", "--out", out_arg],
        )
        .await;
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("--host"), "{}", run.stderr);

    // The real gateway, which reports no relay, is reached directly.
    let table = org.ok(&org.admin, &["gateway", "list"]).await;
    let header = table.lines().next().unwrap_or_default();
    assert!(header.contains("REACH"), "{table}");
    let row = table.lines().nth(1).unwrap_or_default();
    assert!(
        row.starts_with("gw1") && row.contains(" direct "),
        "{table}"
    );
    let listed = org.json(&org.admin, &["gateway", "list"]).await;
    assert_eq!(
        listed[0]["reach"],
        serde_json::json!({"direct": true, "relays": []})
    );
}
