//! Projects and roles with real processes (docs/cli.md, issue 11): `kms-pam server`, the
//! `kms-pam-gateway` binary, the CLI and the real kubectl against the API server double.
//!
//! Two projects; a project admin of `team-a` who can neither see nor change `team-b`; a member who
//! logs in with `team-a` as her default project, runs kubectl and sees only her own sessions; an
//! auditor who reads every session and changes nothing. Taking access away is in revocation.rs,
//! abandoned sessions in abandon.rs.

use std::time::Duration;

use serde_json::Value;

use crate::support::org::Org;
use crate::support::procs::output_of;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projects_and_roles_with_real_processes() {
    let w = Org::start().await;
    let (ca_file, sa_file) = (w.ca_file.to_str().unwrap(), w.sa_file.to_str().unwrap());
    let double_url = w.double_url.clone();
    let admin = w.admin.clone();

    // Two projects; a project admin of team-a; a member and an auditor; names unique by case.
    w.ok(&admin, &["project", "create", "team-a"]).await;
    w.ok(&admin, &["project", "create", "team-b"]).await;
    let pat = w.user("pat").await;
    let alice = w.user("alice").await;
    let audrey = w.user("audrey").await;
    w.refused(&admin, &["user", "create", "Alice"], "regardless of case")
        .await;
    for (user, role) in [("pat", "admin"), ("alice", "member"), ("audrey", "auditor")] {
        w.ok(
            &admin,
            &["project", "member", "add", "team-a", user, "--role", role],
        )
        .await;
    }
    // Issue 28 point 6: gw1 serves only `default` until the organisation admin assigns it.
    let listed = w.json(&admin, &["gateway", "list"]).await;
    assert_eq!(listed[0]["projects"], serde_json::json!(["default"]));
    w.ok(&admin, &["gateway", "assign", "gw1", "team-b"]).await;
    let staging = [
        "--project",
        "team-b",
        "pam",
        "resource",
        "create",
        "kubernetes",
        "staging",
        "--url",
        &double_url,
        "--gateway",
        "gw1",
        "--ca-cert",
        ca_file,
    ];
    w.ok(&admin, &staging).await;

    // The project admin manages team-a ...
    let prod = [
        "--project",
        "team-a",
        "pam",
        "resource",
        "create",
        "kubernetes",
        "prod",
        "--url",
        &double_url,
        "--gateway",
        "gw1",
        "--ca-cert",
        ca_file,
    ];
    // Fails before this change: the project admin put a resource on any gateway, with any URL.
    w.refused(
        &pat,
        &prod,
        "gateway gw1 is not assigned to project team-a; an organisation administrator can \
         assign it with `kms-pam gateway assign gw1 team-a`",
    )
    .await;
    w.refused(
        &pat,
        &["gateway", "assign", "gw1", "team-a"],
        "organisation administrators",
    )
    .await;
    let shown = w
        .json(&admin, &["gateway", "assign", "gw1", "team-a"])
        .await;
    assert_eq!(
        shown["projects"],
        serde_json::json!(["default", "team-a", "team-b"])
    );
    let table = w.ok(&admin, &["gateway", "show", "gw1"]).await;
    assert!(
        table.contains("Projects:        default, team-a, team-b"),
        "{table}"
    );
    let table = w.ok(&admin, &["gateway", "list"]).await;
    assert!(table.contains("default, team-a, team-b"), "{table}");
    // The project admin sees only the projects they are in.
    let theirs = w.json(&pat, &["gateway", "show", "gw1"]).await;
    assert_eq!(theirs["projects"], serde_json::json!(["default", "team-a"]));
    w.ok(&admin, &["gateway", "unassign", "gw1", "team-b"])
        .await;
    let after = w.json(&admin, &["gateway", "show", "gw1"]).await;
    assert_eq!(after["projects"], serde_json::json!(["default", "team-a"]));
    w.ok(&pat, &prod).await;
    let account = [
        "--project",
        "team-a",
        "pam",
        "account",
        "create",
        "prod/admin",
        "--token-file",
        sa_file,
    ];
    w.ok(&pat, &account).await;
    // The project admin edits it without a token: the stored one stays (the session below runs
    // on it); an auditor may not edit it.
    let update = [
        "--project",
        "team-a",
        "pam",
        "account",
        "update",
        "prod/admin",
        "--description",
        "on-call",
        "--max-duration",
        "2h",
    ];
    let out = w.ok(&pat, &update).await;
    assert!(out.contains("token unchanged"), "{out}");
    let accounts = w
        .json(&pat, &["--project", "team-a", "pam", "account", "list"])
        .await;
    assert_eq!(accounts[0]["description"], "on-call");
    assert_eq!(accounts[0]["max_duration_secs"], 7200);
    w.refused(&audrey, &update, "auditor").await;
    let grant = [
        "--project",
        "team-a",
        "pam",
        "grant",
        "create",
        "prod/admin",
        "--user",
        "alice",
    ];
    w.ok(&pat, &grant).await;
    // ... and can neither see nor change team-b.
    let projects = w.json(&pat, &["project", "list"]).await;
    let names: Vec<&str> = projects
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["default", "team-a"]);
    w.refused(
        &pat,
        &["--project", "team-b", "pam", "resource", "list"],
        "project team-b not found",
    )
    .await;
    w.refused(
        &pat,
        &[
            "--project",
            "team-b",
            "pam",
            "resource",
            "delete",
            "staging",
        ],
        "project team-b not found",
    )
    .await;
    w.refused(
        &pat,
        &[
            "project", "member", "add", "team-b", "pat", "--role", "admin",
        ],
        "project team-b not found",
    )
    .await;
    w.refused(
        &pat,
        &["project", "create", "team-c"],
        "organisation administrators",
    )
    .await;
    let b = w
        .json(&admin, &["--project", "team-b", "pam", "resource", "list"])
        .await;
    assert_eq!(b[0]["name"], "staging", "team-b is untouched");

    // Alice logs in from a token file with team-a as her default project.
    let alice_home = w.user_home("alice");
    let out = w.login_to_team_a(&alice_home, &alice).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout.contains("Default project: team-a"),
        "{}",
        out.stdout
    );

    // The member runs kubectl in team-a through her stored login and sees her own sessions.
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
    let mine = output_of(
        w.command_in(
            &alice_home,
            None,
            &["pam", "sessions", "list", "-o", "json"],
        ),
        Duration::from_secs(30),
    )
    .await;
    let mine: Value = serde_json::from_str(&mine.stdout).expect("json");
    assert!(
        mine.as_array()
            .unwrap()
            .iter()
            .all(|s| s["user"] == "alice"),
        "{mine}"
    );
    let alices_id = mine[0]["id"].as_str().expect("alice's session").to_owned();
    // The auditor reads every session of the project and changes nothing.
    let audited = w
        .json(&audrey, &["--project", "team-a", "pam", "sessions", "list"])
        .await;
    assert!(audited
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["id"] == alices_id.as_str()));
    let shown = w
        .json(
            &audrey,
            &["--project", "team-a", "pam", "sessions", "show", &alices_id],
        )
        .await;
    assert_eq!(shown["user"], "alice");
    w.refused(
        &audrey,
        &[
            "--project",
            "team-a",
            "pam",
            "access",
            "prod/admin",
            "--",
            "true",
        ],
        "auditor",
    )
    .await;
    w.refused(
        &audrey,
        &[
            "--project",
            "team-a",
            "pam",
            "sessions",
            "terminate",
            &alices_id,
        ],
        "auditor",
    )
    .await;
    w.refused(
        &audrey,
        &[
            "--project",
            "team-a",
            "pam",
            "grant",
            "create",
            "prod/admin",
            "--user",
            "audrey",
        ],
        "auditor",
    )
    .await;
}
