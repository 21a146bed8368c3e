//! Everyday commands: shell completion that a real bash loads and completes with, and `logout`.

use std::process::Command;

use crate::support::{kms_pam, stderr, stdout, FakeKms};

const WHOAMI_ADMIN: &str = r#"{"name":"admin","kind":"user","admin":true}"#;

/// What bash offers for `kms-pam WORDS` (the last word being completed), with the script
/// `kms-pam completion bash` printed loaded.
fn bash_completes(script: &str, words: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kms-pam.bash");
    std::fs::write(&file, script).unwrap();
    let program = format!(
        "source '{}'; read -ra W <<< 'kms-pam {words}'; COMP_WORDS=(\"${{W[@]}}\"); \
         COMP_CWORD=$(( ${{#W[@]}} - 1 )); \
         \"$(complete -p kms-pam | sed -E 's/.*-F ([^ ]+).*/\\1/')\" kms-pam \"${{W[-1]}}\" \"${{W[-2]}}\"; \
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        file.display()
    );
    let out = Command::new("bash")
        .args(["--norc", "-c", &program])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn bash_completion_loads_and_completes_subcommands_and_their_flags() {
    let home = tempfile::tempdir().unwrap();
    let printed = kms_pam(home.path(), &["completion", "bash"]);
    assert_eq!(printed.status.code(), Some(0), "{}", stderr(&printed));
    let script = stdout(&printed);
    // Past the first word too (clap's bash script missed every state of a hyphenated binary).
    assert!(bash_completes(&script, "pam acc").contains(&"access".to_owned()));
    assert_eq!(bash_completes(&script, "pam acce"), ["access"]);
    assert_eq!(bash_completes(&script, "pam access --dur"), ["--duration"]);
    assert_eq!(bash_completes(&script, "gatew"), ["gateway"]);
    for shell in ["zsh", "fish"] {
        let printed = kms_pam(home.path(), &["completion", shell]);
        assert_eq!(printed.status.code(), Some(0), "{}", stderr(&printed));
        assert!(stdout(&printed).contains("access"), "{shell}");
    }
    let unknown = kms_pam(home.path(), &["completion", "tcsh"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        stderr(&unknown).contains("possible values"),
        "{}",
        stderr(&unknown)
    );
}

#[test]
fn logout_forgets_the_stored_login() {
    let kms = FakeKms::routes(vec![("GET /v1/whoami", 200, WHOAMI_ADMIN.to_owned())]);
    let home = tempfile::tempdir().unwrap();
    let login = kms_pam(
        home.path(),
        &["login", "--url", &kms.url, "--token", "kmsu_abc"],
    );
    assert_eq!(login.status.code(), Some(0), "{}", stderr(&login));
    let stored = home.path().join("config/kms-pam/config.json");
    assert!(stored.exists());
    let out = kms_pam(home.path(), &["logout"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("Logged out"), "{}", stderr(&out));
    assert!(!stored.exists(), "the token is no longer on disk");
    let whoami = kms_pam(home.path(), &["whoami"]);
    assert_ne!(whoami.status.code(), Some(0));
    // Twice is fine.
    let again = kms_pam(home.path(), &["logout"]);
    assert_eq!(again.status.code(), Some(0));
    assert!(
        stderr(&again).contains("Not logged in"),
        "{}",
        stderr(&again)
    );
}
