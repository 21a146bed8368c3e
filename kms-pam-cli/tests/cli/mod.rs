//! The built `kms-pam` binary against a tiny fake KMS (canned answers over plain HTTP/1.1): usage
//! errors and error messages here; login, the token and project it stores, in `login`; the
//! organisation's commands (users, projects, members) in `admin`; `pam` commands' requests and
//! output shapes in `pam`. The full flow with the real server and gateway lives in the
//! workspace's end-to-end tests.

mod admin;
mod everyday;
mod grants;
mod login;
mod pam;
mod resource_update;
mod sso;

use crate::support::{assert_one_line_error, closed_port_url, kms_pam, stderr, FakeKms};

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
