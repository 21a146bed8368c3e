//! The systemd units shipped with the binaries (`kms-pam-cli/deploy/systemd/`,
//! `kms-pam-gateway/deploy/systemd/`): `systemd-analyze verify` finds nothing to say about them,
//! `systemd-analyze security --offline` scores each at 2.0 or below, and every secret reaches
//! its service as a credential, never on a command line.
//!
//! The tests fail (they never skip) when `systemd-analyze` is missing: it comes with Debian's
//! `systemd` package, which `.ci/run` installs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The highest overall exposure `systemd-analyze security` may give a unit (its scale: 0.0 is
/// the tightest, 10.0 the loosest).
const MAX_EXPOSURE: f64 = 2.0;

/// A unit and the executable its `ExecStart=` names.
struct Unit {
    /// Where the unit file lives, from the workspace's root.
    path: &'static str,
    /// The binary it runs, where the unit expects it installed.
    executable: &'static str,
}

const GATEWAY: Unit = Unit {
    path: "kms-pam-gateway/deploy/systemd/kms-pam-gateway.service",
    executable: "/usr/local/bin/kms-pam-gateway",
};
const SERVER: Unit = Unit {
    path: "kms-pam-cli/deploy/systemd/kms-pam-server.service",
    executable: "/usr/local/bin/kms-pam",
};
const RELAY: Unit = Unit {
    path: "kms-pam-cli/deploy/systemd/kms-pam-relay.service",
    executable: "/usr/local/bin/kms-pam",
};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn systemd_analyze(args: &[&str]) -> Output {
    Command::new("systemd-analyze")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run systemd-analyze ({e}); install Debian's systemd package \
                 (.ci/run does)"
            )
        })
}

fn text(output: &Output) -> String {
    format!(
        "status: {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A file system root holding the distribution's own units (the targets ours are ordered
/// after), ours in /etc/systemd/system, and an executable file where each `ExecStart=` points:
/// `verify` checks that the command names an executable file, and this test does not install
/// the binaries on the machine running it.
fn verify_root(unit: &Unit) -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("temporary directory");
    let system_units = ["/usr/lib/systemd/system", "/lib/systemd/system"]
        .into_iter()
        .map(Path::new)
        .find(|dir| dir.join("sysinit.target").exists())
        .expect("the distribution's systemd units (sysinit.target) in /usr/lib/systemd/system");
    let lib = root.path().join("usr/lib/systemd");
    std::fs::create_dir_all(&lib).unwrap();
    let copied = Command::new("cp")
        .arg("-a")
        .arg(system_units)
        .arg(&lib)
        .status()
        .unwrap();
    assert!(copied.success(), "cp -a {}", system_units.display());
    let etc = root.path().join("etc/systemd/system");
    std::fs::create_dir_all(&etc).unwrap();
    let source = workspace_root().join(unit.path);
    let name = source.file_name().unwrap();
    std::fs::copy(&source, etc.join(name)).unwrap();
    let executable = root.path().join(unit.executable.trim_start_matches('/'));
    std::fs::create_dir_all(executable.parent().unwrap()).unwrap();
    std::fs::write(&executable, "#!/bin/sh\nexit 0\n").unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&executable, std::fs::Permissions::from_mode(0o755)).unwrap();
    root
}

/// `systemd-analyze verify` exits 0 and prints nothing: it reports unknown keys and values it
/// cannot parse as warnings with a successful exit, so silence is the pass.
fn verify(unit: &Unit) {
    let root = verify_root(unit);
    let name = Path::new(unit.path).file_name().unwrap().to_str().unwrap();
    let root_arg = format!("--root={}", root.path().display());
    let output = systemd_analyze(&["verify", &root_arg, name]);
    assert!(
        output.status.success() && output.stdout.is_empty() && output.stderr.is_empty(),
        "systemd-analyze verify {name} found problems:\n{}",
        text(&output)
    );
}

/// The overall exposure `systemd-analyze security --offline` gives the unit, checked both by the
/// tool's own threshold (its scale is tenths: 20 is 2.0) and by the number it prints.
fn exposure(unit: &Unit) -> f64 {
    let path = workspace_root().join(unit.path);
    let path = path.to_str().unwrap();
    let threshold = format!("--threshold={}", (MAX_EXPOSURE * 10.0).round());
    let output = systemd_analyze(&["security", "--offline=yes", &threshold, path]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let score = stdout
        .lines()
        .find_map(|line| {
            let (_, rest) = line.split_once("Overall exposure level for ")?;
            let (_, rest) = rest.split_once(": ")?;
            rest.split_whitespace().next()?.parse::<f64>().ok()
        })
        .unwrap_or_else(|| panic!("no overall exposure level in:\n{}", text(&output)));
    println!("{}: exposure {score:.1}", unit.path);
    assert!(
        output.status.success() && score <= MAX_EXPOSURE,
        "{} scores {score:.1}, above {MAX_EXPOSURE:.1}:\n{}",
        unit.path,
        text(&output)
    );
    score
}

/// `KEY=VALUE` settings of the unit's `[Service]` section, in order (comments left out).
fn service_settings(unit: &Unit) -> Vec<(String, String)> {
    let body = std::fs::read_to_string(workspace_root().join(unit.path)).unwrap();
    let mut in_service = false;
    let mut settings = Vec::new();
    for line in body.lines().map(str::trim) {
        if line.starts_with('[') {
            in_service = line == "[Service]";
        } else if in_service && !line.is_empty() && !line.starts_with('#') {
            let (key, value) = line.split_once('=').expect("KEY=VALUE");
            settings.push((key.to_owned(), value.to_owned()));
        }
    }
    settings
}

/// Runs as a dynamic user with a state directory, and every `KMS_PAM_…_FILE` (a secret's file)
/// points into the credentials directory at a credential the unit loads; no secret is given on
/// `ExecStart=` or inline in `Environment=`.
fn secrets_are_credentials(unit: &Unit, expected_credentials: &[&str]) {
    let settings = service_settings(unit);
    let value = |key: &str| -> Vec<&str> {
        settings
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert_eq!(value("DynamicUser"), ["yes"], "{}", unit.path);
    assert_eq!(value("StateDirectory").len(), 1, "{}", unit.path);
    let loaded: Vec<&str> = value("LoadCredential")
        .into_iter()
        .map(|v| v.split_once(':').map_or(v, |(id, _)| id))
        .collect();
    assert_eq!(loaded, expected_credentials, "{}", unit.path);
    let environment: Vec<&str> = value("Environment")
        .into_iter()
        .flat_map(str::split_whitespace)
        .collect();
    for assignment in &environment {
        let (name, path) = assignment.split_once('=').unwrap();
        if let Some(credential) = path.strip_prefix("%d/") {
            assert!(
                loaded.contains(&credential),
                "{}: {name} points at credential {credential}, which the unit does not load",
                unit.path
            );
        } else {
            assert!(
                !name.ends_with("_FILE")
                    && !["TOKEN", "DATABASE", "KEY", "PASSWORD"]
                        .iter()
                        .any(|secret| name.ends_with(secret)),
                "{}: {name}={path} is a secret (or its file) outside the credentials \
                 directory; load it with LoadCredential=",
                unit.path
            );
        }
    }
    for exec in value("ExecStart") {
        assert!(
            !exec.contains("--") && exec.split_whitespace().next() == Some(unit.executable),
            "{}: ExecStart={exec}: configuration comes from the environment, not flags",
            unit.path
        );
    }
}

#[test]
fn the_gateway_unit_verifies_and_scores_at_most_2() {
    verify(&GATEWAY);
    exposure(&GATEWAY);
    secrets_are_credentials(&GATEWAY, &["enroll-token"]);
}

#[test]
fn the_server_unit_verifies_and_scores_at_most_2() {
    verify(&SERVER);
    exposure(&SERVER);
    let credentials = [
        "database-url",
        "root-key",
        "audit.key",
        "audit-keys-endorsed",
    ];
    secrets_are_credentials(&SERVER, &credentials);
}

#[test]
fn the_relay_unit_verifies_and_scores_at_most_2() {
    verify(&RELAY);
    exposure(&RELAY);
    secrets_are_credentials(&RELAY, &["relay.key", "relay.crt", "kms-ca.crt"]);
}

/// The checks above catch what they are meant to: a misspelt value is reported by `verify`, and
/// a unit without the hardening scores far above the limit.
#[test]
fn the_unit_checks_catch_a_typo_and_a_bare_unit() {
    let root = verify_root(&GATEWAY);
    let installed = root
        .path()
        .join("etc/systemd/system/kms-pam-gateway.service");
    let body = std::fs::read_to_string(&installed).unwrap();
    std::fs::write(
        &installed,
        body.replace("ProtectProc=invisible", "ProtectProc=invisibel"),
    )
    .unwrap();
    let root_arg = format!("--root={}", root.path().display());
    let output = systemd_analyze(&["verify", &root_arg, "kms-pam-gateway.service"]);
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("invisibel"),
        "verify did not report the typo:\n{}",
        text(&output)
    );

    let bare = root.path().join("bare.service");
    std::fs::write(
        &bare,
        "[Service]\nExecStart=/usr/local/bin/kms-pam-gateway\n",
    )
    .unwrap();
    let output = systemd_analyze(&[
        "security",
        "--offline=yes",
        "--threshold=20",
        bare.to_str().unwrap(),
    ]);
    assert!(
        !output.status.success(),
        "a unit without hardening passed the threshold:\n{}",
        text(&output)
    );
}
