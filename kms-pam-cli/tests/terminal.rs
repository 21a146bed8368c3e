//! Issue 15 point 2: what others typed (a member's `--reason`, a request path, a description) must
//! not drive the admin's terminal. Every listing and error line of the real binary, fed hostile
//! strings by a fake KMS, prints them with control characters spelled out; `-o json` stays exact.

use crate::support::{kms_pam, stderr, stdout, FakeKms};

/// Sets the terminal title, rings the bell, returns to column 0, starts a new line (to forge a
/// row), a C1 CSI (colour), DEL and a right-to-left override.
const HOSTILE: &str = "x\u{1b}]0;pwned\u{7}\r\nFORGED 6f1c admin\t\u{9b}31m\u{7f}\u{202e}";

/// The JSON string literal of [`HOSTILE`].
fn json(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

fn assert_inert(output: &str, what: &str) {
    for bad in [
        '\u{1b}', '\u{7}', '\r', '\t', '\u{9b}', '\u{7f}', '\u{202e}',
    ] {
        assert!(
            !output.contains(bad),
            "{what}: {bad:?} printed raw in {output:?}"
        );
    }
    assert!(
        !output.lines().any(|l| l.starts_with("FORGED")),
        "{what}: a forged line in {output:?}"
    );
    assert!(
        output.contains("\\u{1b}]0;pwned\\u{7}\\u{d}\\u{a}FORGED"),
        "{what}: the text is still shown, spelled out: {output:?}"
    );
}

fn session(reason: &str) -> String {
    format!(
        r#"{{"id":"6f1c","user":{h},"resource":"prod","account":"admin","gateway":"gw-1",
        "status":"active","created_at":"2026-01-01T10:00:00Z","expires_at":"2026-01-01T11:00:00Z",
        "ended_at":null,"reason":{reason},"end_cause":null"#,
        h = json(HOSTILE),
        reason = json(reason)
    )
}

fn fake_kms() -> FakeKms {
    let h = json(HOSTILE);
    let detail = format!(
        r#"{},"commands":[{{"command":{h},"started_at":"2026-01-01T10:01:00Z","requests":[
        {{"time":"2026-01-01T10:01:00Z","request_id":1,"method":"GET","path":{h},"status":200,
          "verb":{h},"resource":{h},"namespace":{h},"name":{h},"discovery":false,
          "bytes_in":0,"bytes_out":10,"duration_ms":1}}]}}]}}"#,
        session(HOSTILE)
    );
    FakeKms::routes(vec![
        ("GET /v1/sessions", 200, format!("[{}}}]", session(HOSTILE))),
        ("GET /v1/sessions/6f1c", 200, detail),
        (
            "GET /v1/accounts",
            200,
            format!(
                r#"[{{"resource":"prod","name":"admin","description":{h},
                "max_duration_secs":3600,"created_at":"2026-01-01T10:00:00Z"}}]"#
            ),
        ),
        (
            "GET /v1/resources",
            200,
            format!(
                r#"[{{"name":{h},"kind":{h},"url":{h},"gateway":{h},"ssl_verify":true,
                "ca_cert":null,"created_at":"2026-01-01T10:00:00Z"}}]"#
            ),
        ),
        (
            "GET /v1/grants",
            200,
            format!(
                r#"[{{"id":{h},"resource":"prod","account":"admin","user":{h},
                "max_duration_secs":3600,"created_at":"2026-01-01T10:00:00Z"}}]"#
            ),
        ),
        (
            "GET /v1/users",
            200,
            format!(r#"[{{"name":{h},"admin":false,"created_at":"2026-01-01T10:00:00Z"}}]"#),
        ),
        (
            "GET /v1/gateways",
            200,
            format!(
                r#"[{{"name":{h},"address":{h},"status":{h},"last_heartbeat":null,
                "created_at":"2026-01-01T10:00:00Z"}}]"#
            ),
        ),
        (
            "GET /v1/resources/nope",
            404,
            format!(r#"{{"error":{{"code":"not_found","message":{h}}}}}"#),
        ),
    ])
}

#[test]
fn listings_and_errors_print_control_characters_inert() {
    let kms = fake_kms();
    let home = tempfile::tempdir().unwrap();
    let commands: [&[&str]; 7] = [
        &["pam", "sessions", "list"],
        &["pam", "sessions", "show", "6f1c"],
        &["pam", "account", "list"],
        &["pam", "resource", "list"],
        &["pam", "grant", "list"],
        &["user", "list"],
        &["gateway", "list"],
    ];
    for command in commands {
        let args = [&["--url", &kms.url, "--token", "t"][..], command].concat();
        let output = kms_pam(home.path(), &args);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        assert_inert(&stdout(&output), &command.join(" "));
    }

    let args = [
        "--url", &kms.url, "--token", "t", "pam", "resource", "show", "nope",
    ];
    let output = kms_pam(home.path(), &args);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert_inert(&err, "error line");
}

#[test]
fn json_output_keeps_the_exact_text() {
    let kms = fake_kms();
    let home = tempfile::tempdir().unwrap();
    for command in [["sessions", "list"], ["sessions", "show"]] {
        let mut args = vec!["--url", &kms.url, "--token", "t", "pam"];
        args.extend(command);
        if command[1] == "show" {
            args.push("6f1c");
        }
        args.extend(["-o", "json"]);
        let output = kms_pam(home.path(), &args);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let session = if value.is_array() { &value[0] } else { &value };
        assert_eq!(session["reason"], HOSTILE);
        assert_eq!(session["user"], HOSTILE);
    }
}
