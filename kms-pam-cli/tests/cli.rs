//! The built `kms-pam` binary: usage errors, error messages, login, and output shapes, against a
//! tiny fake KMS (canned answers over plain HTTP/1.1). The full flow with the real server and
//! gateway lives in the workspace's end-to-end tests.

// Tests: a failed set-up panics with its reason.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use support::{
    assert_one_line_error, closed_port_url, command, kms_pam, kms_pam_with_stdin, stderr, stdout,
    FakeKms,
};

const WHOAMI_ADMIN: &str = r#"{"name":"admin","kind":"user","admin":true}"#;

#[test]
fn usage_errors_exit_2() {
    let home = tempfile::tempdir().unwrap();
    for args in [
        &["frobnicate"][..],
        &["pam", "grant", "create", "prod/admin"],
        &[
            "pam",
            "resource",
            "create",
            "openshift",
            "x",
            "--url",
            "u",
            "--gateway",
            "g",
        ],
        &["pam", "access", "prod/admin", "--port", "70000"],
    ] {
        let output = kms_pam(home.path(), args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(stderr(&output).starts_with("error: "), "{args:?}");
    }
}

#[test]
fn bad_durations_are_usage_errors_naming_the_accepted_forms() {
    let home = tempfile::tempdir().unwrap();
    for args in [
        &["pam", "access", "prod/admin", "--duration", "soon"][..],
        &[
            "pam",
            "grant",
            "create",
            "prod/admin",
            "--user",
            "al",
            "--max-duration",
            "0s",
        ],
    ] {
        let output = kms_pam(home.path(), args);
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{err}");
        assert!(err.starts_with("error: invalid value"), "{err}");
        assert!(err.contains("invalid duration"), "{err}");
    }
}

#[test]
fn bad_account_references_are_usage_errors() {
    let home = tempfile::tempdir().unwrap();
    for target in ["prod", "prod/", "a/b/c"] {
        let output = kms_pam(home.path(), &["pam", "account", "delete", target]);
        assert_eq!(output.status.code(), Some(2));
        assert!(
            stderr(&output).contains("expected RESOURCE/ACCOUNT"),
            "{}",
            stderr(&output)
        );
    }
}

#[test]
fn an_unreadable_token_file_fails_before_contacting_kms() {
    let home = tempfile::tempdir().unwrap();
    let url = closed_port_url();
    let missing = home.path().join("missing-token");
    let output = kms_pam(
        home.path(),
        &[
            "--url",
            &url,
            "--token",
            "t",
            "pam",
            "account",
            "create",
            "prod/admin",
            "--token-file",
            missing.to_str().unwrap(),
        ],
    );
    assert_one_line_error(
        &output,
        &format!("cannot read token file {}", missing.display()),
    );
    let empty = home.path().join("empty-token");
    std::fs::write(&empty, "\n").unwrap();
    let output = kms_pam(
        home.path(),
        &[
            "--url",
            &url,
            "--token",
            "t",
            "pam",
            "account",
            "create",
            "prod/admin",
            "--token-file",
            empty.to_str().unwrap(),
        ],
    );
    assert_one_line_error(&output, "is empty");
}

#[test]
fn kms_down_says_so_plainly() {
    let home = tempfile::tempdir().unwrap();
    let url = closed_port_url();
    let output = kms_pam(
        home.path(),
        &["--url", &url, "--token", "t", "pam", "resource", "list"],
    );
    assert_eq!(
        stderr(&output),
        format!("error: cannot reach KMS at {url}: connection refused\n")
    );
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn without_a_url_the_user_is_told_how_to_give_one() {
    let home = tempfile::tempdir().unwrap();
    let output = kms_pam(home.path(), &["whoami"]);
    assert_one_line_error(&output, "no KMS URL");
}

#[test]
fn login_verifies_and_stores_a_private_config_then_whoami_uses_it() {
    let kms = FakeKms::routes(vec![("GET /v1/whoami", 200, WHOAMI_ADMIN.to_owned())]);
    let home = tempfile::tempdir().unwrap();
    let output = kms_pam(
        home.path(),
        &["login", "--url", &kms.url, "--token", "kmsu_abc"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("as admin (admin)"),
        "{}",
        stdout(&output)
    );

    let path = home.path().join("config/kms-pam/config.json");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    let stored: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(stored["url"], kms.url.as_str());
    assert_eq!(stored["token"], "kmsu_abc");

    let output = kms_pam(home.path(), &["whoami", "-o", "json"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let me: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(me["name"], "admin");
    assert!(
        kms.seen().iter().all(|r| r.ends_with("Bearer kmsu_abc")),
        "{:?}",
        kms.seen()
    );

    // The stored token is for that KMS only.
    let other = FakeKms::routes(vec![("GET /v1/whoami", 200, WHOAMI_ADMIN.to_owned())]);
    let output = kms_pam(home.path(), &["whoami", "--url", &other.url]);
    assert_one_line_error(&output, "no API token");
    assert!(other.seen().is_empty());
}

#[test]
fn several_kms_urls_fail_over_and_login_keeps_the_list() {
    let home = tempfile::tempdir().unwrap();
    let (down_a, down_b) = (closed_port_url(), closed_port_url());
    let both_down = format!("{down_a},{down_b}");
    let output = kms_pam(
        home.path(),
        &["--url", &both_down, "--token", "t", "whoami"],
    );
    assert_eq!(
        stderr(&output),
        format!("error: cannot reach KMS at {down_a}, {down_b}: connection refused\n")
    );
    assert_eq!(output.status.code(), Some(1));

    // The first replica down, the second answers; login stores both, in order.
    let kms = FakeKms::routes(vec![("GET /v1/whoami", 200, WHOAMI_ADMIN.to_owned())]);
    let list = format!("{down_a},{}", kms.url);
    let output = kms_pam(
        home.path(),
        &["login", "--url", &list, "--token", "kmsu_abc"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let path = home.path().join("config/kms-pam/config.json");
    let stored: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(stored["url"], list.as_str());
    let output = kms_pam(home.path(), &["whoami"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        format!("admin (admin user) at {}\n", kms.url),
        "whoami names the replica that answered"
    );
    assert_eq!(kms.seen().len(), 2, "{:?}", kms.seen());
}

const WHOAMI_ALICE: &str = r#"{"name":"alice","kind":"user","admin":false}"#;

/// The token in the stored login, if any.
fn stored_token(home: &Path) -> Option<String> {
    let text = std::fs::read(home.join("config/kms-pam/config.json")).ok()?;
    let stored: serde_json::Value = serde_json::from_slice(&text).unwrap();
    stored["token"].as_str().map(str::to_owned)
}

#[test]
fn login_reads_the_token_from_standard_input_and_never_shows_it() {
    for (options, input) in [
        // `--token-file -` reads to the end, trimming the line break.
        (&["--token-file", "-"][..], "kmsu_piped\n"),
        // No token option: the first line (a pipe is not a terminal: no prompt).
        (&[][..], "kmsu_piped\nignored second line\n"),
    ] {
        let kms = FakeKms::routes(vec![("GET /v1/whoami", 200, WHOAMI_ALICE.to_owned())]);
        let home = tempfile::tempdir().unwrap();
        let args = [&["login", "--url", &kms.url][..], options].concat();
        let output = kms_pam_with_stdin(home.path(), &args, input);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(stdout(&output).contains("as alice."), "{}", stdout(&output));
        for printed in [stdout(&output), stderr(&output)] {
            assert!(
                !printed.contains("kmsu_piped"),
                "{args:?} printed {printed:?}"
            );
        }
        assert_eq!(kms.seen(), ["GET /v1/whoami Bearer kmsu_piped"], "{args:?}");
        assert_eq!(stored_token(home.path()).as_deref(), Some("kmsu_piped"));
    }
}

#[test]
fn login_with_nothing_on_standard_input_stores_nothing() {
    let kms = FakeKms::routes(vec![("GET /v1/whoami", 200, WHOAMI_ALICE.to_owned())]);
    let home = tempfile::tempdir().unwrap();
    let output = kms_pam_with_stdin(home.path(), &["login", "--url", &kms.url], "\n");
    assert_one_line_error(&output, "no token given");
    let output = kms_pam_with_stdin(
        home.path(),
        &["login", "--url", &kms.url, "--token-file", "-"],
        "",
    );
    assert_one_line_error(&output, "token file - is empty");
    assert!(kms.seen().is_empty(), "{:?}", kms.seen());
    assert_eq!(stored_token(home.path()), None);
}

/// A fake KMS that knows every project and lists no resources in any.
fn kms_with_projects() -> FakeKms {
    FakeKms::start(|method, path, _| match (method, path) {
        ("GET", "/v1/whoami") => (200, WHOAMI_ALICE.to_owned()),
        ("GET", path) if path.ends_with("/resources") => (200, "[]".to_owned()),
        ("GET", path) if path.starts_with("/v1/projects/") => {
            let name = path.trim_start_matches("/v1/projects/");
            let project = format!(
                r#"{{"name":"{name}","role":"member","created_at":"2026-01-01T10:00:00Z"}}"#
            );
            (200, project)
        }
        _ => support::not_found(),
    })
}

#[test]
fn the_project_is_the_flag_else_the_environment_else_the_login_else_default() {
    let kms = kms_with_projects();
    let home = tempfile::tempdir().unwrap();
    // The path `pam resource list` asked for, given these options and KMS_PAM_PROJECT.
    let resources_path = |options: &[&str], env: Option<&str>| {
        let args = [options, &["pam", "resource", "list", "--url", &kms.url]].concat();
        let mut command = command(home.path(), &args);
        command.env("KMS_PAM_TOKEN", "kmsu_piped");
        if let Some(project) = env {
            command.env("KMS_PAM_PROJECT", project);
        }
        let output = command.output().unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "{args:?}: {}",
            stderr(&output)
        );
        let seen = kms.seen();
        let last = seen.last().unwrap();
        last.split_whitespace().nth(1).unwrap().to_owned()
    };
    let flag = ["--project", "from-flag"];

    // Nothing said: `default`, through the unprefixed routes.
    assert_eq!(resources_path(&[], None), "/v1/resources");
    assert_eq!(
        resources_path(&[], Some("")),
        "/v1/resources",
        "empty is unset"
    );
    assert_eq!(
        resources_path(&[], Some("from-env")),
        "/v1/projects/from-env/resources"
    );
    assert_eq!(
        resources_path(&flag, Some("from-env")),
        "/v1/projects/from-flag/resources"
    );

    // `login --project` stores a default, which the environment and the flag override.
    let login = [
        "login",
        "--url",
        &kms.url,
        "--token-file",
        "-",
        "--project",
        "stored",
    ];
    let output = kms_pam_with_stdin(home.path(), &login, "kmsu_piped\n");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        kms.seen()
            .contains(&"GET /v1/projects/stored Bearer kmsu_piped".to_owned()),
        "login checks the project: {:?}",
        kms.seen()
    );
    assert_eq!(resources_path(&[], None), "/v1/projects/stored/resources");
    assert_eq!(
        resources_path(&[], Some("")),
        "/v1/projects/stored/resources"
    );
    assert_eq!(
        resources_path(&[], Some("from-env")),
        "/v1/projects/from-env/resources"
    );
    assert_eq!(
        resources_path(&flag, Some("from-env")),
        "/v1/projects/from-flag/resources"
    );
    assert_eq!(
        resources_path(&flag, None),
        "/v1/projects/from-flag/resources"
    );
}

const BOB: &str = r#"{"name":"bob","admin":false,"disabled":false,
    "created_at":"2026-01-01T10:00:00Z"}"#;

#[test]
fn user_token_rotate_enable_and_delete_call_their_routes() {
    let rotated = format!(r#"{{"user":{BOB},"token":"kmsu_rotated"}}"#);
    let kms = FakeKms::routes(vec![
        ("POST /v1/users/bob/token", 200, rotated),
        ("POST /v1/users/bob/enable", 200, BOB.to_owned()),
        ("DELETE /v1/users/bob", 204, String::new()),
    ]);
    let home = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let args = [&["--url", &kms.url, "--token", "kmsu_admin"][..], args].concat();
        let output = kms_pam(home.path(), &args);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{args:?}: {}",
            stderr(&output)
        );
        (stdout(&output), stderr(&output))
    };

    // The new token is printed once, with how to log in without argv, and nothing else secret.
    let (out, err) = run(&["user", "token", "rotate", "bob"]);
    assert_eq!(out.matches("kmsu_rotated").count(), 1, "{out}");
    assert!(out.contains("the old one no longer works"), "{out}");
    assert!(out.contains("--token-file"), "{out}");
    assert!(
        !out.contains("kmsu_admin") && !err.contains("kmsu_"),
        "{out}{err}"
    );
    let (out, _) = run(&["user", "token", "rotate", "bob", "-o", "json"]);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["token"], "kmsu_rotated");
    assert_eq!(out.matches("kmsu_").count(), 1, "{out}");

    let (out, _) = run(&["user", "enable", "bob"]);
    assert!(out.contains("Enabled user bob"), "{out}");
    let (out, _) = run(&["user", "delete", "bob"]);
    assert!(out.contains("Deleted user bob"), "{out}");

    assert_eq!(
        kms.seen(),
        [
            "POST /v1/users/bob/token Bearer kmsu_admin",
            "POST /v1/users/bob/token Bearer kmsu_admin",
            "POST /v1/users/bob/enable Bearer kmsu_admin",
            "DELETE /v1/users/bob Bearer kmsu_admin",
        ]
    );
    assert!(
        kms.bodies().iter().all(String::is_empty),
        "{:?}",
        kms.bodies()
    );
}

#[test]
fn project_show_delete_and_member_list_remove_call_their_routes() {
    let project = r#"{"name":"team-a","role":"auditor","created_at":"2026-01-01T10:00:00Z"}"#;
    let members = r#"[{"user":"bob","role":"admin","created_at":"2026-01-02T10:00:00Z"}]"#;
    let kms = FakeKms::routes(vec![
        ("GET /v1/projects/team-a", 200, project.to_owned()),
        ("DELETE /v1/projects/team-a", 204, String::new()),
        ("GET /v1/projects/team-a/members", 200, members.to_owned()),
        ("DELETE /v1/projects/team-a/members/bob", 204, String::new()),
    ]);
    let home = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let args = [&["--url", &kms.url, "--token", "t"][..], args].concat();
        let output = kms_pam(home.path(), &args);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{args:?}: {}",
            stderr(&output)
        );
        stdout(&output)
    };

    let out = run(&["project", "show", "team-a"]);
    assert!(
        out.contains("Name:     team-a") && out.contains("You are:  auditor"),
        "{out}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&run(&["project", "show", "team-a", "-o", "json"])).unwrap();
    assert_eq!(json["role"], "auditor");
    let out = run(&["project", "member", "list", "team-a"]);
    let row = out.lines().nth(1).unwrap_or_default();
    assert!(row.starts_with("bob") && row.contains("admin"), "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&run(&["project", "member", "list", "team-a", "-o", "json"])).unwrap();
    assert_eq!(json[0]["user"], "bob");
    let out = run(&["project", "member", "remove", "team-a", "bob"]);
    assert!(out.contains("Removed bob from project team-a"), "{out}");
    let out = run(&["project", "delete", "team-a"]);
    assert!(out.contains("Deleted project team-a"), "{out}");

    assert_eq!(
        kms.seen(),
        [
            "GET /v1/projects/team-a Bearer t",
            "GET /v1/projects/team-a Bearer t",
            "GET /v1/projects/team-a/members Bearer t",
            "GET /v1/projects/team-a/members Bearer t",
            "DELETE /v1/projects/team-a/members/bob Bearer t",
            "DELETE /v1/projects/team-a Bearer t",
        ]
    );
    assert!(
        kms.bodies().iter().all(String::is_empty),
        "{:?}",
        kms.bodies()
    );
}

#[test]
fn a_refused_login_stores_nothing() {
    let refused = r#"{"error":{"code":"unauthenticated","message":"invalid API token"}}"#;
    let kms = FakeKms::routes(vec![("GET /v1/whoami", 401, refused.to_owned())]);
    let home = tempfile::tempdir().unwrap();
    let output = kms_pam(
        home.path(),
        &["login", "--url", &kms.url, "--token", "wrong"],
    );
    assert_one_line_error(&output, "invalid API token (unauthenticated)");
    assert!(!home.path().join("config/kms-pam/config.json").exists());
}

#[test]
fn api_errors_are_one_line() {
    let kms = FakeKms::routes(vec![]);
    let home = tempfile::tempdir().unwrap();
    let output = kms_pam(
        home.path(),
        &[
            "--url", &kms.url, "--token", "t", "pam", "resource", "show", "nope",
        ],
    );
    assert_one_line_error(&output, "no such thing (not_found)");
    assert_eq!(kms.seen()[0], "GET /v1/resources/nope Bearer t");
}

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
fn user_create_prints_the_token_once() {
    let created = r#"{"user":{"name":"alice","admin":false,"created_at":"2026-01-01T10:00:00Z"},
        "token":"kmsu_new"}"#;
    let kms = FakeKms::routes(vec![("POST /v1/users", 200, created.to_owned())]);
    let home = tempfile::tempdir().unwrap();
    let output = kms_pam(
        home.path(),
        &["--url", &kms.url, "--token", "t", "user", "create", "alice"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output).matches("kmsu_new").count(), 1);
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
