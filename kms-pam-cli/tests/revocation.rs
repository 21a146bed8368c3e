//! Taking access away, with real processes (docs/cli.md, issue 11): `kms-pam server`, the
//! `kms-pam-gateway` binary, the CLI and the real kubectl against the API server double.
//!
//! Each of `user disable`, `pam grant delete`, `project member remove` and `user token rotate`
//! cuts a running `kubectl get pods -w` within 1 s of KMS's answer, and the CLI holding it says
//! why; a disabled user's and a rotated-out token get 401 while the new token works; `gateway
//! revoke` refuses the next tunnel. The cut latencies are printed (`--nocapture`).

use std::path::PathBuf;
use std::time::Duration;

use kms_pam::access::{open_session, AccessRequest};
use kms_pam::kms::client::KmsClient;
use kms_pam::kube::kubeconfig::KubeconfigTarget;
use kms_pam::Secret;
use tokio::process::Command;

use crate::support::org::{finished, Org, CUT_BOUND};
use crate::support::procs::output_of;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taking_access_away_cuts_with_real_processes() {
    let w = Org::with_team_a().await;
    let admin = w.admin.clone();
    let alice = w.granted_member("alice").await;
    let bob = w.granted_member("bob").await;
    let carl = w.granted_member("carl").await;
    let dave = w.granted_member("dave").await;
    let erin = w.granted_member("erin").await;

    // `user disable` cuts a running watch; the old token is refused; the CLI says why.
    let disable = ["user", "disable", "bob"];
    cuts(&w, ("bob", &bob), &disable, "disabled", "user_disabled").await;
    w.refused(&bob, &["whoami"], "user bob is disabled").await;

    // Deleting the grant ends the session opened under it.
    let grants = w
        .json(&admin, &["--project", "team-a", "pam", "grant", "list"])
        .await;
    let carls = grants
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["user"] == "carl")
        .expect("grant");
    let id = carls["id"].as_str().unwrap().to_owned();
    let delete = ["--project", "team-a", "pam", "grant", "delete", &id];
    cuts(&w, ("carl", &carl), &delete, "grant", "grant_deleted").await;

    // Removing the member from the project ends their session there; the CLI says why.
    let remove = ["project", "member", "remove", "team-a", "dave"];
    let why = "removed from the project";
    cuts(&w, ("dave", &dave), &remove, why, "membership_removed").await;

    // Rotating a token ends the sessions opened with the old one; the old token gets 401 with a
    // clear message, the new one (printed once) works.
    let rotate = ["user", "token", "rotate", "erin", "-o", "json"];
    let printed = cuts(&w, ("erin", &erin), &rotate, "API token", "token_revoked").await;
    let rotated: serde_json::Value = serde_json::from_str(&printed).expect("json");
    let new_token = rotated["token"].as_str().expect("new token").to_owned();
    assert_ne!(new_token, erin);
    let out = w.run(&erin, &["whoami"]).await;
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert_eq!(
        out.stderr,
        "error: invalid or revoked API token (unauthenticated)\n"
    );
    assert!(w.ok(&new_token, &["whoami"]).await.starts_with("erin "));
    let again = [
        "--project",
        "team-a",
        "pam",
        "access",
        "prod/admin",
        "--",
        "kubectl",
        "get",
        "pods",
    ];
    assert!(w.ok(&new_token, &again).await.contains("Running"));

    // `gateway revoke`: an open session's next tunnel is refused, its token too, and KMS opens
    // no new session on it.
    let kms = KmsClient::new(&w.url, Some(Secret::new(alice.clone())))
        .expect("client")
        .in_project("team-a");
    let kubeconfig = w.user_home("alice").join("revoked.yaml");
    let request = AccessRequest::new("prod", "admin", Duration::from_secs(600))
        .with_kubeconfig(KubeconfigTarget::File(kubeconfig.clone()));
    let access = open_session(&kms, request).await.expect("session");
    let kubectl = |path: PathBuf| async move {
        let mut command = Command::new("kubectl");
        command
            .args(["get", "pods", "--request-timeout=10s"])
            .env("KUBECONFIG", path)
            .kill_on_drop(true);
        output_of(command, Duration::from_secs(30)).await
    };
    let before = kubectl(kubeconfig.clone()).await;
    assert_eq!(before.code, Some(0), "{}", before.stderr);
    w.ok(&admin, &["gateway", "revoke", "gw1"]).await;
    let after = kubectl(kubeconfig.clone()).await;
    assert_ne!(
        after.code,
        Some(0),
        "a tunnel to the revoked gateway went through: {}",
        after.stdout
    );
    println!("kubectl after the revocation: {}", after.stderr.trim());
    let closed = access.close().await.expect("close");
    assert_eq!(
        closed.session.end_cause,
        Some(kms_pam::session::EndCause::GatewayRevoked)
    );
    let gw_token = std::fs::read_to_string(w.root.path().join("gw-data/gateway.token"))
        .expect("gateway token");
    w.refused(gw_token.trim(), &["whoami"], "invalid or revoked API token")
        .await;
    let out = w
        .run(
            &alice,
            &[
                "--project",
                "team-a",
                "pam",
                "access",
                "prod/admin",
                "--",
                "true",
            ],
        )
        .await;
    assert_ne!(out.code, Some(0));
    assert!(out.stderr.contains("revoked"), "{}", out.stderr);
    let list = w.json(&admin, &["gateway", "list"]).await;
    assert_eq!(list[0]["status"], "revoked");
}

/// Runs `args` as the admin while `user`'s `kubectl get pods -w` runs through `pam access`:
/// the watch is cut within [`CUT_BOUND`] of KMS's answer, the CLI exits non-zero saying `says`,
/// and the session is `terminated` with `cause`. Returns what the command printed.
async fn cuts(
    w: &Org,
    (user, token): (&str, &str),
    args: &[&str],
    says: &str,
    cause: &str,
) -> String {
    let watch = w.watching(token).await;
    let (after_answer, total, printed) = w.cut_by(args).await;
    let what = args.join(" ");
    println!("{what}: watch cut {after_answer:?} after KMS answered ({total:?} from running it)");
    assert!(
        after_answer <= CUT_BOUND,
        "cut {after_answer:?} after `{what}`"
    );
    let (code, stderr) = finished(watch).await;
    assert_ne!(code, Some(0), "{stderr}");
    assert!(stderr.contains(says), "{stderr}");
    assert_eq!(w.ending_of(user).await, ("terminated".into(), cause.into()));
    printed
}
