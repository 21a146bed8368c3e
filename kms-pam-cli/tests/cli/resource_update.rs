//! `pam resource update` (issue 24 point 7): only what is given is sent, a recording flag keeps
//! the rest of the resource's policy, and nothing to change or a bad CA file sends nothing.

use serde_json::{json, Value};

use crate::support::{kms_pam, stderr, stdout, FakeKms};

const RESOURCE: &str = r#"{"name":"prod","kind":"kubernetes","url":"https://k8s.corp.internal",
    "gateway":"gw-2","ssl_verify":true,"ca_cert":null,"created_at":"2026-01-01T10:00:00Z",
    "recording":{"unrecorded_streams":"allow","max_bytes":4096}}"#;

fn fake() -> FakeKms {
    FakeKms::routes(vec![
        ("PATCH /v1/resources/prod", 200, RESOURCE.to_owned()),
        ("GET /v1/resources/prod", 200, RESOURCE.to_owned()),
        (
            "PATCH /v1/projects/team-a/resources/prod",
            200,
            RESOURCE.to_owned(),
        ),
    ])
}

fn sent(kms: &FakeKms, n: usize) -> Value {
    serde_json::from_str(&kms.bodies()[n]).unwrap()
}

#[test]
fn resource_update_sends_only_what_is_given() {
    let kms = fake();
    let home = tempfile::tempdir().unwrap();
    let base = [
        "--url", &kms.url, "--token", "t", "pam", "resource", "update", "prod",
    ];
    let run = |extra: &[&str]| kms_pam(home.path(), &[&base[..], extra].concat());

    let output = run(&["--url", "https://k8s.corp.internal", "--gateway", "gw-2"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let out = stdout(&output);
    assert!(out.starts_with("Updated resource prod;"), "{out}");
    assert!(out.contains("Gateway:    gw-2"), "{out}");
    assert_eq!(
        sent(&kms, 0),
        json!({"url": "https://k8s.corp.internal", "gateway": "gw-2"})
    );

    let ca = home.path().join("ca.pem");
    std::fs::write(
        &ca,
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let output = run(&["--ca-cert", ca.to_str().unwrap(), "--ssl-verify", "true"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        sent(&kms, 1),
        json!({"ssl_verify": true,
               "ca_cert": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"})
    );
    let output = run(&["--no-ca-cert", "--ssl-verify=false"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("will not be verified"),
        "{}",
        stderr(&output)
    );
    assert_eq!(sent(&kms, 2), json!({"ssl_verify": false, "ca_cert": ""}));

    // A recording flag: the resource's policy is read, and sent back with the flag applied.
    let output = run(&["--recording-input-max-bytes", "16MiB"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let seen = kms.seen();
    assert!(seen[3].starts_with("GET /v1/resources/prod"), "{seen:?}");
    assert!(seen[4].starts_with("PATCH /v1/resources/prod"), "{seen:?}");
    assert_eq!(
        sent(&kms, 4),
        json!({"recording": {"unrecorded_streams": "allow", "max_bytes": 4096,
                             "max_input_bytes": 16_777_216}})
    );

    // In a project, as JSON.
    let output = kms_pam(
        home.path(),
        &[
            "--url",
            &kms.url,
            "--token",
            "t",
            "--project",
            "team-a",
            "-o",
            "json",
            "pam",
            "resource",
            "update",
            "prod",
            "--ssl-verify",
            "true",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let shown: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(shown["gateway"], "gw-2");
    assert!(kms.seen()[5].starts_with("PATCH /v1/projects/team-a/resources/prod"));
}

#[test]
fn resource_update_with_nothing_to_change_or_a_bad_ca_file_sends_nothing() {
    let kms = fake();
    let home = tempfile::tempdir().unwrap();
    let base = [
        "--url", &kms.url, "--token", "t", "pam", "resource", "update", "prod",
    ];
    let output = kms_pam(home.path(), &base);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("nothing to change"),
        "{}",
        stderr(&output)
    );
    let not_pem = home.path().join("ca.txt");
    std::fs::write(&not_pem, "hello").unwrap();
    let output = kms_pam(
        home.path(),
        &[&base[..], &["--ca-cert", not_pem.to_str().unwrap()]].concat(),
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("holds no PEM certificate"),
        "{}",
        stderr(&output)
    );
    let both = kms_pam(
        home.path(),
        &[&base[..], &["--ca-cert", "x.pem", "--no-ca-cert"]].concat(),
    );
    assert_eq!(
        both.status.code(),
        Some(2),
        "a usage error: {}",
        stderr(&both)
    );
    assert!(
        kms.seen().is_empty(),
        "nothing reached KMS: {:?}",
        kms.seen()
    );
}

#[test]
fn resource_update_says_what_kms_refused() {
    let refusal = r#"{"error":{"code":"forbidden","message":"gateway gw-2 is not assigned to project default"}}"#;
    let kms = FakeKms::routes(vec![("PATCH /v1/resources/prod", 403, refusal.to_owned())]);
    let home = tempfile::tempdir().unwrap();
    let output = kms_pam(
        home.path(),
        &[
            "--url",
            &kms.url,
            "--token",
            "t",
            "pam",
            "resource",
            "update",
            "prod",
            "--gateway",
            "gw-2",
        ],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("gateway gw-2 is not assigned to project default (forbidden)"),
        "{}",
        stderr(&output)
    );
}
