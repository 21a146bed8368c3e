//! `kms-pam pam access` end to end on the CLI side: a fake KMS issues real session certificates
//! (the gateway behind them is unreachable, which the local proxy only notices per request).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::support::{command, kms_pam, not_found, stderr, stdout, FakeKms};
use kms_pam::kms::api::{CreateSession, CreatedSession, SessionView};
use kms_pam::session::{EndCause, Session, SessionId, SessionStatus};
use kms_pam::tls::{CertificateAuthority, SessionCertSpec};

/// Session bookkeeping behind the fake KMS.
struct Sessions {
    ca: CertificateAuthority,
    gateway_address: String,
    by_id: Mutex<HashMap<String, SessionView>>,
    /// When set, every session reads back as terminated by an administrator.
    terminate_all: AtomicBool,
}

impl Sessions {
    fn start() -> (FakeKms, Arc<Self>) {
        let sessions = Arc::new(Self {
            ca: CertificateAuthority::generate("fake KMS CA", Duration::from_secs(3600)).unwrap(),
            gateway_address: crate::support::closed_port_url()
                .trim_start_matches("http://")
                .to_owned(),
            by_id: Mutex::new(HashMap::new()),
            terminate_all: AtomicBool::new(false),
        });
        let shared = sessions.clone();
        let kms = FakeKms::start(move |method, path, body| shared.answer(method, path, body));
        (kms, sessions)
    }

    fn answer(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let segments: Vec<&str> = path.trim_start_matches("/v1/").split('/').collect();
        match (method, segments.as_slice()) {
            ("POST", ["sessions"]) => self.create(body),
            ("GET", ["sessions", id]) => self.update(id, |view| {
                if self.terminate_all.load(Ordering::SeqCst) {
                    view.session.status = SessionStatus::Terminated;
                    view.end_cause = Some(EndCause::Termination);
                }
            }),
            ("POST", ["sessions", id, "end"]) => self.update(id, |view| {
                if view.session.status == SessionStatus::Active {
                    view.session.status = SessionStatus::Ended;
                    view.end_cause = Some(EndCause::User);
                }
            }),
            _ => not_found(),
        }
    }

    fn create(&self, body: &str) -> (u16, String) {
        let request: CreateSession = serde_json::from_str(body).unwrap();
        let now = SystemTime::now();
        let view = SessionView {
            session: Session {
                id: SessionId::new_random(),
                user: "alice".into(),
                resource: request.resource,
                account: request.account,
                gateway: "gw-1".into(),
                status: SessionStatus::Active,
                created_at: now,
                expires_at: now + Duration::from_secs(request.duration_secs),
                ended_at: None,
                reason: request.reason,
                binding: None,
            },
            end_cause: None,
            identity: None,
        };
        let spec = SessionCertSpec::new(
            view.session.id.to_string(),
            "gw-1",
            "alice",
            now,
            view.session.expires_at,
        );
        let created = CreatedSession {
            certificate: self.ca.sign_session_csr(&request.csr, &spec).unwrap(),
            ca_certificate: self.ca.cert_pem().to_owned(),
            gateway_address: self.gateway_address.clone(),
            direct: true,
            relays: Vec::new(),
            session: view.clone(),
        };
        self.by_id
            .lock()
            .unwrap()
            .insert(view.session.id.to_string(), view);
        (200, serde_json::to_string(&created).unwrap())
    }

    fn update(&self, id: &str, change: impl FnOnce(&mut SessionView)) -> (u16, String) {
        let mut sessions = self.by_id.lock().unwrap();
        let Some(view) = sessions.get_mut(id) else {
            return not_found();
        };
        change(view);
        (200, serde_json::to_string(view).unwrap())
    }

    fn statuses(&self) -> Vec<SessionStatus> {
        self.by_id
            .lock()
            .unwrap()
            .values()
            .map(|v| v.session.status)
            .collect()
    }
}

/// Starts `pam access` without a command and reads its banner up to the Ctrl+C hint.
fn start_interactive(home: &Path, kms: &FakeKms, target: &str) -> (Child, String) {
    let mut child = command(
        home,
        &["--url", &kms.url, "--token", "t", "pam", "access", target],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut banner = String::new();
    while !banner.contains("Press Ctrl+C") {
        if reader.read_line(&mut banner).unwrap() == 0 {
            break;
        }
    }
    (child, banner)
}

fn kubeconfig_of(banner: &str) -> PathBuf {
    let line = banner
        .lines()
        .find(|l| l.contains("export KUBECONFIG="))
        .unwrap();
    PathBuf::from(line.trim().trim_start_matches("export KUBECONFIG="))
}

fn send_sigterm(child: &Child) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_command_runs_with_the_session_kubeconfig_and_its_exit_code_is_kept() {
    let (kms, sessions) = Sessions::start();
    let home = tempfile::tempdir().unwrap();
    let path = home.path().join("session.yaml");
    let output = kms_pam(
        home.path(),
        &[
            "--url",
            &kms.url,
            "--token",
            "t",
            "pam",
            "access",
            "prod/admin",
            "--duration",
            "10m",
            "--reason",
            "incident 7",
            "--kubeconfig",
            path.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            "cat \"$KUBECONFIG\"; exit 3",
        ],
    );
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let kubeconfig = stdout(&output);
    assert!(
        kubeconfig.contains("server: https://127.0.0.1:"),
        "{kubeconfig}"
    );
    assert!(
        kubeconfig.contains("current-context: kms-pam/prod/admin"),
        "{kubeconfig}"
    );
    assert!(
        kubeconfig.contains("certificate-authority-data:"),
        "{kubeconfig}"
    );
    assert!(!path.exists(), "the session kubeconfig is removed");
    assert_eq!(sessions.statuses(), [SessionStatus::Ended]);
    let sent: serde_json::Value = serde_json::from_str(&kms.bodies()[0]).unwrap();
    assert_eq!(sent["duration_secs"], 600);
    assert_eq!(sent["reason"], "incident 7");
    assert!(
        stderr(&output).contains("ended after"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn sigterm_ends_the_session_and_removes_the_default_kubeconfig() {
    let (kms, sessions) = Sessions::start();
    let home = tempfile::tempdir().unwrap();
    let (child, banner) = start_interactive(home.path(), &kms, "prod/admin");
    let path = kubeconfig_of(&banner);
    assert_eq!(path, home.path().join(".kube/kms-pam/prod-admin.yaml"));
    assert!(banner.contains("kubectl get pods"), "{banner}");
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        !home.path().join(".kube/config").exists(),
        "the user's kubeconfig is untouched"
    );

    send_sigterm(&child);
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(!path.exists());
    assert_eq!(sessions.statuses(), [SessionStatus::Ended]);
}

#[test]
fn termination_by_an_administrator_exits_non_zero() {
    let (kms, sessions) = Sessions::start();
    let home = tempfile::tempdir().unwrap();
    let (child, banner) = start_interactive(home.path(), &kms, "prod/admin");
    let path = kubeconfig_of(&banner);
    sessions.terminate_all.store(true, Ordering::SeqCst);
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("error: session terminated by an administrator"),
        "{}",
        stderr(&output)
    );
    assert!(!path.exists());
}

#[test]
fn two_sessions_to_different_accounts_run_side_by_side() {
    let (kms, sessions) = Sessions::start();
    let home = tempfile::tempdir().unwrap();
    let (admin, admin_banner) = start_interactive(home.path(), &kms, "prod/admin");
    let (viewer, viewer_banner) = start_interactive(home.path(), &kms, "prod/viewer");
    let proxy = |banner: &str| {
        banner
            .lines()
            .find(|l| l.starts_with("Local proxy"))
            .unwrap()
            .to_owned()
    };
    assert_ne!(proxy(&admin_banner), proxy(&viewer_banner));
    let (admin_path, viewer_path) = (kubeconfig_of(&admin_banner), kubeconfig_of(&viewer_banner));
    assert_ne!(admin_path, viewer_path);
    assert!(admin_path.exists() && viewer_path.exists());

    send_sigterm(&admin);
    assert_eq!(admin.wait_with_output().unwrap().status.code(), Some(0));
    assert!(!admin_path.exists());
    assert!(viewer_path.exists(), "the other session is unaffected");
    send_sigterm(&viewer);
    assert_eq!(viewer.wait_with_output().unwrap().status.code(), Some(0));
    assert_eq!(
        sessions.statuses(),
        [SessionStatus::Ended, SessionStatus::Ended]
    );
}

#[test]
fn merge_switches_context_for_the_command_and_restores_the_file() {
    let (kms, _sessions) = Sessions::start();
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join(".kube/config");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    let original = "# mine\napiVersion: v1\nkind: Config\ncurrent-context: dev\ncontexts:\n- name: dev\n  context: {cluster: dev, user: dev}\n";
    std::fs::write(&config, original).unwrap();
    let output = kms_pam(
        home.path(),
        &[
            "--url",
            &kms.url,
            "--token",
            "t",
            "pam",
            "access",
            "prod/admin",
            "--merge",
            "--",
            "sh",
            "-c",
            "grep current-context \"$KUBECONFIG\"",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        stdout(&output).trim(),
        "current-context: kms-pam/prod/admin"
    );
    assert_eq!(std::fs::read_to_string(&config).unwrap(), original);
}

#[test]
fn a_command_that_cannot_start_exits_127_and_ends_the_session() {
    let (kms, sessions) = Sessions::start();
    let home = tempfile::tempdir().unwrap();
    let output = kms_pam(
        home.path(),
        &[
            "--url",
            &kms.url,
            "--token",
            "t",
            "pam",
            "access",
            "prod/admin",
            "--",
            "/nonexistent/kubectl",
        ],
    );
    assert_eq!(output.status.code(), Some(127));
    assert!(
        stderr(&output).contains("error: cannot run /nonexistent/kubectl"),
        "{}",
        stderr(&output)
    );
    assert_eq!(sessions.statuses(), [SessionStatus::Ended]);
    assert!(!home.path().join(".kube/kms-pam/prod-admin.yaml").exists());
}

/// Issue 15 point 1: another user can write the directory `--kubeconfig` points into. A planted
/// link is not followed, a careless shared directory is refused, and the session is ended.
#[test]
fn a_kubeconfig_another_user_could_read_is_refused_and_the_session_ended() {
    let (kms, sessions) = Sessions::start();
    let home = tempfile::tempdir().unwrap();
    let stolen = home.path().join("attacker-reads-this");
    std::fs::write(&stolen, "").unwrap();
    let sticky = home.path().join("tmp");
    let shared = home.path().join("shared");
    for (dir, mode) in [(&sticky, 0o1777), (&shared, 0o777)] {
        std::fs::create_dir(dir).unwrap();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let planted = sticky.join("kubeconfig.yaml");
    std::os::unix::fs::symlink(&stolen, &planted).unwrap();
    let cases = [
        (planted.clone(), false, "symbolic link"),
        (planted.clone(), true, "symbolic link"),
        (
            shared.join("kubeconfig.yaml"),
            false,
            "writable by other users",
        ),
        (shared.join("config"), true, "writable by other users"),
    ];
    for (path, merge, expected) in &cases {
        let mut args = vec![
            "--url",
            &kms.url,
            "--token",
            "t",
            "pam",
            "access",
            "prod/admin",
            "--kubeconfig",
            path.to_str().unwrap(),
        ];
        if *merge {
            args.push("--merge");
        }
        args.extend(["--", "true"]);
        let output = kms_pam(home.path(), &args);
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{path:?}: {err}");
        assert!(
            err.starts_with("error: ") && err.contains(expected),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&stolen).unwrap(), "");
        assert_eq!(std::fs::read_dir(&shared).unwrap().count(), 0);
    }
    assert!(std::fs::symlink_metadata(&planted)
        .unwrap()
        .file_type()
        .is_symlink());
    // A refusal found before asking KMS (the stale-kubeconfig check reads the path first) costs
    // no session; one found after it ends the session it had opened. None is left active.
    let statuses = sessions.statuses();
    assert!(statuses.len() <= cases.len(), "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == SessionStatus::Ended),
        "{statuses:?}"
    );
}

/// rustls' own logging (its `logging` feature; `.ci/run` refuses it) writes a WARN for every
/// client sending an IP address as SNI, as `openssl s_client -servername 127.0.0.1` does: one
/// line per connection to the loopback proxy, a flood anyone could cause. The real binary, with
/// every rustls record let through, logs nothing for such clients.
#[test]
fn a_client_sending_an_ip_address_as_sni_leaves_no_log_line() {
    if std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_err()
    {
        panic!("this test needs the openssl command (Debian package openssl)");
    }
    let (kms, _sessions) = Sessions::start();
    let home = tempfile::tempdir().unwrap();
    let mut child = command(
        home.path(),
        &[
            "--url",
            &kms.url,
            "--token",
            "t",
            "pam",
            "access",
            "prod/admin",
        ],
    )
    .env("RUST_LOG", "warn,rustls=trace,tokio_rustls=trace")
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut banner = String::new();
    while !banner.contains("Press Ctrl+C") {
        if reader.read_line(&mut banner).unwrap() == 0 {
            break;
        }
    }
    let kubeconfig = std::fs::read_to_string(kubeconfig_of(&banner)).unwrap();
    let server = kubeconfig
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: https://"))
        .unwrap()
        .to_owned();
    for _ in 0..3 {
        let openssl = std::process::Command::new("openssl")
            .args(["s_client", "-connect", &server, "-servername", "127.0.0.1"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&openssl.stdout);
        assert!(
            said.contains("BEGIN CERTIFICATE"),
            "the handshake did not complete: {said}{}",
            String::from_utf8_lossy(&openssl.stderr)
        );
    }
    send_sigterm(&child);
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let log = stderr(&output);
    assert!(
        !log.contains("SNI") && !log.contains("WARN") && !log.contains("rustls"),
        "{log}"
    );
}
