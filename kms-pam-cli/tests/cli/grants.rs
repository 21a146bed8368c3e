//! `pam grant` with lifetimes (issue 23): `--until` sends an instant (a duration counts from
//! now) and refuses a past or zero one before sending anything; `list` shows each grant's
//! status and expiry; `revoke` sends the reason; `delete` works as before.

use std::time::{Duration, SystemTime};

use kms_pam::time::parse_rfc3339;
use serde_json::Value;

use crate::support::{kms_pam, stderr, stdout, FakeKms};

const GRANT: &str = r#"{"id":"g1","resource":"prod","account":"admin","user":"bob",
  "max_duration_secs":3600,"created_at":"2026-01-01T10:00:00Z","status":"active",
  "expires_at":"2030-01-01T00:00:00Z"}"#;
const EXPIRED: &str = r#"{"id":"g2","resource":"prod","account":"view","user":"bob",
  "max_duration_secs":600,"created_at":"2026-01-01T10:00:00Z","status":"expired",
  "expires_at":"2026-01-01T12:00:00Z"}"#;
const REVOKED: &str = r#"{"id":"g3","resource":"prod","account":"admin","user":"carol",
  "max_duration_secs":600,"created_at":"2026-01-01T10:00:00Z","status":"revoked",
  "revoked_at":"2026-01-02T09:00:00Z","revoked_by":"alice","revoke_reason":"moved teams"}"#;

fn sent(kms: &FakeKms, n: usize) -> Value {
    serde_json::from_str(&kms.bodies()[n]).unwrap()
}

#[test]
fn grant_create_until_sends_an_instant_and_refuses_the_past() {
    let kms = FakeKms::routes(vec![("POST /v1/grants", 201, GRANT.to_owned())]);
    let home = tempfile::tempdir().unwrap();
    let base = [
        "--url",
        &kms.url,
        "--token",
        "t",
        "pam",
        "grant",
        "create",
        "prod/admin",
        "--user",
        "bob",
    ];
    let run = |extra: &[&str]| kms_pam(home.path(), &[&base[..], extra].concat());

    let output = run(&["--until", "2h"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("until 2030-01-01T00:00:00Z (grant g1)"),
        "{}",
        stdout(&output)
    );
    let body = sent(&kms, 0);
    let until = parse_rfc3339(body["expires_at"].as_str().unwrap()).unwrap();
    let from_now = until.duration_since(SystemTime::now()).unwrap();
    assert!(
        from_now > Duration::from_secs(7100) && from_now <= Duration::from_secs(7200),
        "{body}"
    );

    let output = run(&["--until", "2030-01-01T00:00:00Z", "--max-duration", "1h"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(sent(&kms, 1)["expires_at"], "2030-01-01T00:00:00Z");
    assert_eq!(sent(&kms, 1)["max_duration_secs"], 3600);

    // Without --until, no expiry is sent.
    let output = run(&[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(sent(&kms, 2).get("expires_at").is_none());

    for past in ["2020-01-01T00:00:00Z", "0s", "-5m"] {
        let output = run(&["--until", past]);
        assert_ne!(output.status.code(), Some(0), "{past}");
        assert!(
            stderr(&output).contains("not in the future"),
            "{past}: {}",
            stderr(&output)
        );
    }
    let output = run(&["--until", "next tuesday"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("RFC 3339"), "{}", stderr(&output));
    assert_eq!(kms.bodies().len(), 3, "a refused expiry sent a request");
}

#[test]
fn grant_list_shows_status_and_expiry_and_revoke_sends_the_reason() {
    let kms = FakeKms::routes(vec![
        (
            "GET /v1/grants",
            200,
            format!("[{GRANT},{EXPIRED},{REVOKED}]"),
        ),
        ("POST /v1/grants/g3/revoke", 200, REVOKED.to_owned()),
        ("DELETE /v1/grants/g1", 204, String::new()),
    ]);
    let home = tempfile::tempdir().unwrap();
    let base = ["--url", &kms.url, "--token", "t", "pam", "grant"];
    let run = |extra: &[&str]| kms_pam(home.path(), &[&base[..], extra].concat());

    let output = run(&["list"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let out = stdout(&output);
    let header = out.lines().next().unwrap();
    assert!(
        header.contains("STATUS") && header.contains("EXPIRES"),
        "{out}"
    );
    let line = |id: &str| out.lines().find(|l| l.starts_with(id)).unwrap().to_owned();
    assert!(line("g1").contains("active") && line("g1").contains("2030-01-01T00:00:00Z"));
    assert!(line("g2").contains("expired"), "{out}");
    assert!(
        line("g3").contains("revoked by alice: moved teams"),
        "{out}"
    );
    let output = run(&["list", "-o", "json"]);
    let listed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(listed[2]["revoke_reason"], "moved teams");

    let output = run(&["revoke", "g3"]);
    assert_eq!(output.status.code(), Some(2), "--reason is required");
    let output = run(&["revoke", "g3", "--reason", "moved teams"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stdout(&output).starts_with("Revoked grant g3 (carol on prod/admin)"));
    let body = kms.bodies().last().cloned().unwrap();
    assert_eq!(body, r#"{"reason":"moved teams"}"#);

    let output = run(&["delete", "g1"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), "Deleted grant g1.\n");
}
