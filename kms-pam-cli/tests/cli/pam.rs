//! `pam` commands: what they send (service-account tokens from files, never printed; recording
//! policies) and the shapes of what they print.

use crate::support::{kms_pam, stderr, stdout, FakeKms};

const SESSION: &str = r#"{"id":"6f1c","user":"alice","resource":"prod","account":"admin",
  "gateway":"gw-1","status":"terminated","created_at":"2026-01-01T10:00:00Z",
  "expires_at":"2026-01-01T11:00:00Z","ended_at":"2026-01-01T10:30:00Z","reason":"incident",
  "end_cause":"termination"}"#;

#[test]
fn sessions_list_json_has_the_spec_shape() {
    let kms = FakeKms::routes(vec![("GET /v1/sessions", 200, format!("[{SESSION}]"))]);
    let home = tempfile::tempdir().unwrap();
    let output = kms_pam(
        home.path(),
        &[
            "pam", "sessions", "list", "--active", "--user", "alice", "-o", "json", "--url",
            &kms.url, "--token", "t",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let sessions: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let session = &sessions.as_array().unwrap()[0];
    for key in [
        "id",
        "user",
        "resource",
        "account",
        "gateway",
        "status",
        "created_at",
        "expires_at",
        "ended_at",
        "reason",
    ] {
        assert!(session.get(key).is_some(), "missing {key} in {session}");
    }
    assert_eq!(session["status"], "terminated");
    assert_eq!(session["ended_at"], "2026-01-01T10:30:00Z");
    assert_eq!(
        kms.seen()[0],
        "GET /v1/sessions?active=true&user=alice Bearer t"
    );
}

#[test]
fn sessions_show_json_adds_commands() {
    let commands = r#","commands":[{"command":"kubectl get","started_at":"2026-01-01T10:01:00.000Z",
        "kubectl_session":"k-1","requests":[
        {"time":"2026-01-01T10:01:00.000Z","request_id":1,"method":"GET","path":"/api","status":200,
         "verb":"get","resource":null,"namespace":null,"name":null,"discovery":true},
        {"time":"2026-01-01T10:01:00.100Z","request_id":2,"method":"GET",
         "path":"/api/v1/namespaces/default/pods","status":200,"verb":"list","resource":"pods",
         "namespace":"default","name":null,"discovery":false}]}]}"#;
    let detail = format!("{}{commands}", SESSION.trim_end().trim_end_matches('}'));
    let kms = FakeKms::routes(vec![("GET /v1/sessions/6f1c", 200, detail)]);
    let home = tempfile::tempdir().unwrap();
    let args = [
        "--url", &kms.url, "--token", "t", "pam", "sessions", "show", "6f1c",
    ];
    let output = kms_pam(home.path(), &[&args[..], &["-o", "json"]].concat());
    let shown: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(shown["id"], "6f1c");
    let command = &shown["commands"][0];
    assert_eq!(command["command"], "kubectl get");
    assert_eq!(
        command["kubectl_session"], "k-1",
        "extra fields pass through"
    );
    let request = &command["requests"][1];
    for key in [
        "time",
        "method",
        "path",
        "status",
        "verb",
        "resource",
        "namespace",
        "name",
    ] {
        assert!(
            request.get(key).is_some(),
            "requests[].{key} is missing: {request}"
        );
    }
    assert_eq!(request["discovery"], false);
    let output = kms_pam(home.path(), &args);
    let table = stdout(&output);
    assert!(table.contains("kubectl get"), "{table}");
    assert!(table.contains("list pods in default"), "{table}");
    assert!(table.contains("(+1 discovery requests)"), "{table}");
    assert!(
        stdout(&output).contains("Status:   terminated (termination)"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn account_list_shows_the_access_command() {
    let accounts = r#"[{"resource":"prod","name":"admin","description":null,
        "max_duration_secs":28800,"created_at":"2026-01-01T10:00:00Z"}]"#;
    let kms = FakeKms::routes(vec![("GET /v1/accounts", 200, accounts.to_owned())]);
    let home = tempfile::tempdir().unwrap();
    let base = [
        "--url", &kms.url, "--token", "t", "pam", "account", "list", "prod",
    ];
    let output = kms_pam(home.path(), &base);
    let table = stdout(&output);
    assert!(table.contains("prod/admin"), "{table}");
    assert!(table.contains("kms-pam pam access prod/admin"), "{table}");
    assert!(table.contains("8h"), "{table}");
    let output = kms_pam(home.path(), &[&base[..], &["-o", "json"]].concat());
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json[0]["access_command"], "kms-pam pam access prod/admin");
    assert_eq!(json[0]["max_duration_secs"], 28800);
    assert_eq!(kms.seen()[0], "GET /v1/accounts?resource=prod Bearer t");
}

#[test]
fn account_create_sends_the_token_file_contents_trimmed() {
    let account = r#"{"resource":"prod","name":"admin","description":"ops",
        "max_duration_secs":7200,"created_at":"2026-01-01T10:00:00Z"}"#;
    let kms = FakeKms::routes(vec![(
        "POST /v1/resources/prod/accounts",
        200,
        account.to_owned(),
    )]);
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("sa.token");
    std::fs::write(&file, "eyJhbGciOi.sa-token\n").unwrap();
    let output = kms_pam(
        home.path(),
        &[
            "--url",
            &kms.url,
            "--token",
            "t",
            "pam",
            "account",
            "create",
            "prod/admin",
            "--token-file",
            file.to_str().unwrap(),
            "--description",
            "ops",
            "--max-duration",
            "2h",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let out = stdout(&output);
    assert!(
        !out.contains("sa-token"),
        "the token is never printed: {out}"
    );
    assert!(out.contains("kms-pam pam access prod/admin"), "{out}");
    let sent: serde_json::Value = serde_json::from_str(&kms.bodies()[0]).unwrap();
    assert_eq!(sent["token"], "eyJhbGciOi.sa-token");
    assert_eq!(sent["max_duration_secs"], 7200);
    assert_eq!(sent["description"], "ops");
}

#[test]
fn account_update_sends_only_what_is_given_and_keeps_the_token() {
    let account = r#"{"resource":"prod","name":"admin","description":"on-call",
        "max_duration_secs":3600,"created_at":"2026-01-01T10:00:00Z"}"#;
    let kms = FakeKms::routes(vec![(
        "PATCH /v1/resources/prod/accounts/admin",
        200,
        account.to_owned(),
    )]);
    let home = tempfile::tempdir().unwrap();
    let base = [
        "--url", &kms.url, "--token", "t", "pam", "account", "update",
    ];
    let output = kms_pam(
        home.path(),
        &[
            &base[..],
            &[
                "prod/admin",
                "--description",
                "on-call",
                "--max-duration",
                "1h",
            ],
        ]
        .concat(),
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("token unchanged"),
        "{}",
        stdout(&output)
    );
    let sent: serde_json::Value = serde_json::from_str(&kms.bodies()[0]).unwrap();
    assert_eq!(
        sent,
        serde_json::json!({"description": "on-call", "max_duration_secs": 3600}),
        "no token field: the stored one stays"
    );

    // A new token from a file is sent, and never printed.
    let file = home.path().join("new.token");
    std::fs::write(&file, "eyJ.rotated-sa-token\n").unwrap();
    let output = kms_pam(
        home.path(),
        &[
            &base[..],
            &["prod/admin", "--token-file", file.to_str().unwrap()],
        ]
        .concat(),
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let out = stdout(&output);
    assert!(
        out.contains("token replaced") && !out.contains("rotated-sa-token"),
        "{out}"
    );
    let sent: serde_json::Value = serde_json::from_str(&kms.bodies()[1]).unwrap();
    assert_eq!(sent, serde_json::json!({"token": "eyJ.rotated-sa-token"}));
}

#[test]
fn account_update_with_nothing_to_change_or_an_unreadable_token_file_sends_nothing() {
    let kms = FakeKms::routes(vec![]);
    let home = tempfile::tempdir().unwrap();
    let base = [
        "--url", &kms.url, "--token", "t", "pam", "account", "update",
    ];
    let output = kms_pam(home.path(), &[&base[..], &["prod/admin"]].concat());
    assert_ne!(output.status.code(), Some(0));
    assert!(
        stderr(&output).contains("nothing to change"),
        "{}",
        stderr(&output)
    );
    let missing = home.path().join("no-such.token");
    let output = kms_pam(
        home.path(),
        &[
            &base[..],
            &["prod/admin", "--token-file", missing.to_str().unwrap()],
        ]
        .concat(),
    );
    assert_ne!(output.status.code(), Some(0));
    assert!(
        stderr(&output).contains("no-such.token"),
        "{}",
        stderr(&output)
    );
    assert!(
        kms.seen().is_empty(),
        "nothing reached KMS: {:?}",
        kms.seen()
    );
}

#[test]
fn resource_create_sends_the_recording_policy() {
    let resource = r#"{"name":"lab","kind":"kubernetes","url":"https://10.0.0.2:6443",
        "gateway":"gw1","ssl_verify":true,"ca_cert":null,"created_at":"2026-01-01T10:00:00Z",
        "recording":{"unrecorded_streams":"allow","max_bytes":2097152}}"#;
    let kms = FakeKms::routes(vec![("POST /v1/resources", 201, resource.to_owned())]);
    let home = tempfile::tempdir().unwrap();
    let args = [
        "--url",
        &kms.url,
        "--token",
        "t",
        "pam",
        "resource",
        "create",
        "kubernetes",
        "lab",
        "--url",
        "https://10.0.0.2:6443",
        "--gateway",
        "gw1",
        "--unrecorded-streams",
        "allow",
        "--recording-max-bytes",
        "2MiB",
        "--recording-input-max-bytes",
        "16MiB",
    ];
    let output = kms_pam(home.path(), &args);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let sent: serde_json::Value = serde_json::from_str(&kms.bodies()[0]).unwrap();
    assert_eq!(
        sent["recording"],
        serde_json::json!({"unrecorded_streams": "allow", "max_bytes": 2_097_152,
                           "max_input_bytes": 16_777_216})
    );
    // Without the flags the default is sent: refuse what cannot be recorded.
    let kms = FakeKms::routes(vec![("POST /v1/resources", 201, resource.to_owned())]);
    let args: Vec<&str> = args[..13]
        .iter()
        .copied()
        .map(|a| {
            if a.starts_with("http://") {
                kms.url.as_str()
            } else {
                a
            }
        })
        .collect();
    let output = kms_pam(home.path(), &args);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let sent: serde_json::Value = serde_json::from_str(&kms.bodies()[0]).unwrap();
    assert_eq!(sent["recording"]["unrecorded_streams"], "deny");
    let bad = kms_pam(
        home.path(),
        &[&args[..], &["--unrecorded-streams", "maybe"]].concat(),
    );
    assert_eq!(
        bad.status.code(),
        Some(2),
        "a usage error: {}",
        stderr(&bad)
    );
}

/// `sessions show --recording N` writes the recorded output to stdout, byte for byte, and says
/// on stderr what the caps left out, so a redirected replay stays clean.
#[test]
fn a_recordings_gaps_are_named_on_stderr_and_the_output_is_exact() {
    use base64::Engine as _;
    use kms_pam::audit::{RecordingGap, StreamDetails};
    use kms_pam::kms::api::RecordingView;
    use kms_pam::kube::StreamKind;

    let details = StreamDetails::from_request(
        7,
        StreamKind::Exec,
        Some("command=cat&stdin=true&stdout=true"),
        &http::HeaderMap::new(),
    );
    let view = RecordingView {
        number: 1,
        details,
        complete: false,
        truncated_reason: Some("the recording cap of 4 bytes was reached".into()),
        exit_code: Some(0),
        gaps: vec![
            RecordingGap {
                channel: 0,
                offset: 6,
                bytes: 5,
            },
            RecordingGap {
                channel: 1,
                offset: 4,
                bytes: 7,
            },
        ],
        output_base64: base64::engine::general_purpose::STANDARD.encode(b"top \x1b[0m"),
    };
    let kms = FakeKms::routes(vec![(
        "GET /v1/sessions/6f1c/recordings/1",
        200,
        serde_json::to_string(&view).unwrap(),
    )]);
    let home = tempfile::tempdir().unwrap();
    let output = kms_pam(
        home.path(),
        &[
            "--url",
            &kms.url,
            "--token",
            "t",
            "pam",
            "sessions",
            "show",
            "6f1c",
            "--recording",
            "1",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(output.stdout, b"top \x1b[0m", "the output as recorded");
    let notes = stderr(&output);
    assert!(
        notes.contains("5 bytes of channel 0 (stdin) from byte 6 on were not recorded"),
        "{notes}"
    );
    assert!(
        notes.contains("7 bytes of channel 1 (stdout) from byte 4 on were not recorded"),
        "{notes}"
    );
}
