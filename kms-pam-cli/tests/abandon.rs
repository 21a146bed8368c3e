//! Abandoned sessions with real processes (docs/cli.md, issue 11): `kms-pam server`, the
//! `kms-pam-gateway` binary, the CLI and the real kubectl against the API server double.
//!
//! A SIGKILLed `pam access` whose session ends `ended (abandoned)` at KMS's real 30 s default
//! (within 60 s), one stopped for as long that says so when it wakes, and the stale kubeconfig
//! removed by the next `pam access`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::Child;

use crate::support::org::Org;
use crate::support::procs::output_of;

/// Starts `pam access prod/admin [EXTRA…]` (serving, no command) in `team-a` from `home`, its
/// stderr into `stderr`, returning once its session is active, with the session id and the
/// kubeconfig it wrote.
async fn serving(
    world: &Org,
    home: &Path,
    extra: &[&str],
    stderr: &Path,
) -> (Child, String, PathBuf) {
    let args = [
        &["pam", "access", "prod/admin", "--duration", "10m"][..],
        extra,
    ]
    .concat();
    let mut command = world.command_in(home, None, &args);
    let stderr = std::fs::File::create(stderr).expect("stderr file");
    command.stdout(Stdio::piped()).stderr(Stdio::from(stderr));
    let mut child = command.spawn().expect("start pam access");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let (mut id, mut kubeconfig) = (None, None);
    while let Ok(Some(line)) = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the session banner")
    {
        if let Some(rest) = line.strip_prefix("Session ") {
            id = rest.split_whitespace().next().map(str::to_owned);
        }
        if let Some(path) = line.trim().strip_prefix("export KUBECONFIG=") {
            kubeconfig = Some(PathBuf::from(path));
        }
        if line.contains("Press Ctrl+C") {
            break;
        }
    }
    // The rest of its output is not needed; keep the pipe drained.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (
        child,
        id.expect("session id"),
        kubeconfig.expect("kubeconfig"),
    )
}

fn signal(child: &Child, name: &str) {
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid])
        .status()
        .expect("kill");
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unheld_sessions_are_ended_as_abandoned() {
    let w = Org::with_team_a().await;
    let admin = w.admin.clone();
    let alice = w.granted_member("alice").await;
    let alice_home = w.user_home("alice");
    let out = w.login_to_team_a(&alice_home, &alice).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);

    // A SIGKILLed `pam access`, and one stopped (a laptop asleep), both left unheld from here:
    // KMS's real 30 s default runs while the rest of the test does.
    let killed_log = alice_home.join("killed.stderr");
    let (killed, killed_id, stale) = serving(&w, &alice_home, &[], &killed_log).await;
    let elsewhere = alice_home.join("stopped.yaml");
    let elsewhere = ["--kubeconfig", elsewhere.to_str().unwrap()];
    let stopped_log = alice_home.join("stopped.stderr");
    let (stopped, stopped_id, _) = serving(&w, &alice_home, &elsewhere, &stopped_log).await;
    signal(&killed, "KILL");
    signal(&stopped, "STOP");
    let unheld_since = Instant::now();
    assert!(
        stale.exists(),
        "a SIGKILLed pam access leaves its kubeconfig behind"
    );
    // The next `pam access` of the account removes it, and says the last one did not end cleanly.
    let args = [
        "pam",
        "access",
        "prod/admin",
        "--",
        "kubectl",
        "get",
        "pods",
    ];
    let out = output_of(
        w.command_in(&alice_home, None, &args),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("Running"), "{}", out.stdout);
    assert!(out.stderr.contains("did not end cleanly"), "{}", out.stderr);
    assert!(!stale.exists());

    // The unheld sessions end as abandoned within 60 s; --active never shows them after that.
    // Each is judged by its own last sign of life: the stopped CLI's session was opened after
    // the killed one's, so the reaper may end it a tick later.
    let mut abandoned_after = None;
    while unheld_since.elapsed() < Duration::from_secs(60) {
        let sessions = w.sessions().await;
        let status = |id: &str| {
            let session = sessions.iter().find(|s| s["id"] == id).expect("listed");
            (session["status"].clone(), session["end_cause"].clone())
        };
        let (killed_status, stopped_status) = (status(&killed_id), status(&stopped_id));
        if killed_status.0 != "active" && stopped_status.0 != "active" {
            for (id, (status, cause)) in
                [(&killed_id, killed_status), (&stopped_id, stopped_status)]
            {
                assert_eq!(
                    (status.as_str(), cause.as_str()),
                    (Some("ended"), Some("abandoned")),
                    "session {id}"
                );
            }
            abandoned_after = Some(unheld_since.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let abandoned_after =
        abandoned_after.expect("the SIGKILLed and the stopped sessions ended within 60 s");
    println!("abandoned: both unheld sessions ended {abandoned_after:?} after their CLIs stopped");
    let active = w
        .json(
            &admin,
            &["--project", "team-a", "pam", "sessions", "list", "--active"],
        )
        .await;
    for id in [&killed_id, &stopped_id] {
        assert!(
            !active
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["id"] == id.as_str()),
            "{active}"
        );
    }
    // The stopped CLI wakes up, learns its session was abandoned, and exits non-zero.
    signal(&stopped, "CONT");
    let out = tokio::time::timeout(Duration::from_secs(20), stopped.wait_with_output())
        .await
        .expect("the woken pam access ended")
        .expect("wait");
    let said = std::fs::read_to_string(&stopped_log).expect("stderr");
    assert_ne!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("abandoned"), "{said}");
}
