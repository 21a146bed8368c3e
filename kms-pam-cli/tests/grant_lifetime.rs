//! Grants with a lifetime, with real processes (issue 23 point 1): a grant created with
//! `--until` cuts a running `kubectl get pods -w` within 1 s of its expiry and `pam access` says
//! the grant expired; `pam grant revoke` cuts one within 1 s of KMS's answer and says the grant
//! was revoked; the revoked grant stays listed and opens no new session.

use std::time::{Duration, SystemTime};

use kms_pam::time::parse_rfc3339;

use crate::support::org::{finished, wait_until, Org, CUT_BOUND};

/// A new member of `team-a` granted `prod/admin` with `extra` flags; returns their token and
/// the grant as `pam grant create -o json` printed it.
async fn member(w: &Org, name: &str, extra: &[&str]) -> (String, serde_json::Value) {
    let token = w.user(name).await;
    let admin = w.admin.clone();
    let add = [
        "project", "member", "add", "team-a", name, "--role", "member",
    ];
    w.ok(&admin, &add).await;
    let create = [
        "-o",
        "json",
        "--project",
        "team-a",
        "pam",
        "grant",
        "create",
        "prod/admin",
        "--user",
        name,
    ];
    let grant = w.json(&admin, &[&create[..], extra].concat()).await;
    (token, grant)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiring_or_revoked_grant_cuts_its_sessions_with_real_processes() {
    let w = Org::with_team_a().await;
    let admin = w.admin.clone();

    // Expiry: the watch is cut within 1 s of the grant's expiry; the CLI says the grant expired.
    let (frank, grant) = member(&w, "frank", &["--until", "8s"]).await;
    let until = parse_rfc3339(grant["expires_at"].as_str().expect("expiry")).expect("rfc3339");
    let watch = w.watching(&frank).await;
    wait_until("the grant to expire", Duration::from_secs(20), || {
        w.double.open_streams() == 0
    })
    .await;
    let late = SystemTime::now().duration_since(until).unwrap_or_default();
    println!("watch cut {late:?} after the grant expired");
    assert!(late <= CUT_BOUND, "cut {late:?} after the grant expired");
    let (code, stderr) = finished(watch).await;
    assert_ne!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("the grant it was opened under expired"),
        "{stderr}"
    );
    assert_eq!(
        w.ending_of("frank").await,
        ("terminated".into(), "grant_expired".into())
    );

    // Revocation: cut within 1 s of KMS's answer; the CLI says the grant was revoked.
    let (gina, grant) = member(&w, "gina", &[]).await;
    let id = grant["id"].as_str().expect("id").to_owned();
    let watch = w.watching(&gina).await;
    let revoke = [
        "--project",
        "team-a",
        "pam",
        "grant",
        "revoke",
        &id,
        "--reason",
        "left the team",
    ];
    let (after_answer, _, printed) = w.cut_by(&revoke).await;
    println!("pam grant revoke: watch cut {after_answer:?} after KMS answered");
    assert!(
        after_answer <= CUT_BOUND,
        "cut {after_answer:?} after revoke"
    );
    assert!(
        printed.starts_with(&format!("Revoked grant {id}")),
        "{printed}"
    );
    let (code, stderr) = finished(watch).await;
    assert_ne!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("the grant it was opened under was revoked"),
        "{stderr}"
    );
    assert_eq!(
        w.ending_of("gina").await,
        ("terminated".into(), "grant_revoked".into())
    );
    let list = ["--project", "team-a", "pam", "grant", "list"];
    let listed = w.ok(&admin, &list).await;
    let line = listed.lines().find(|l| l.starts_with(&id)).expect("listed");
    assert!(
        line.contains("revoked by ") && line.contains(": left the team"),
        "{listed}"
    );
    let expired = listed.lines().find(|l| l.contains("frank")).expect("frank");
    assert!(expired.contains("expired"), "{listed}");
    let again = [
        "--project",
        "team-a",
        "pam",
        "access",
        "prod/admin",
        "--",
        "true",
    ];
    w.refused(&gina, &again, "was revoked").await;
    w.refused(&frank, &again, "expired at").await;
}
