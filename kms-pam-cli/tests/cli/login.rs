//! `login`: the token from a flag, a file or standard input, stored privately for one KMS; the
//! default project it stores and the order `--project`, `KMS_PAM_PROJECT`, that default.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::support::{
    assert_one_line_error, closed_port_url, command, kms_pam, kms_pam_with_stdin, not_found,
    stderr, stdout, FakeKms,
};

const WHOAMI_ADMIN: &str = r#"{"name":"admin","kind":"user","admin":true}"#;

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
        _ => not_found(),
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
