//! The organisation's commands: users (their tokens printed once), projects and members, each
//! sending the method, path and body KMS expects.

use crate::support::{kms_pam, stderr, stdout, FakeKms};

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

const GW: &str = r#"{"name":"gw1","address":null,"status":"pending","last_heartbeat":null,
    "created_at":"2026-01-01T10:00:00Z","projects":["default","team-a"],
    "allowed_url_hosts":["*.corp.internal"]}"#;

/// Issue 28 point 6: the gateway scope commands send what KMS expects, and print the projects.
#[test]
fn gateway_scope_commands_call_their_routes_with_their_bodies() {
    let kms = FakeKms::routes(vec![
        ("GET /v1/gateways/gw1", 200, GW.to_owned()),
        ("POST /v1/gateways/gw1/projects", 200, GW.to_owned()),
        (
            "DELETE /v1/gateways/gw1/projects/team-b",
            200,
            GW.to_owned(),
        ),
        ("PATCH /v1/gateways/gw1", 200, GW.to_owned()),
    ]);
    let home = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let output = kms_pam(
            home.path(),
            &[&["--url", &kms.url, "--token", "t", "gateway"], args].concat(),
        );
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        stdout(&output)
    };
    let shown = run(&["show", "gw1"]);
    assert!(
        shown.contains("Projects:        default, team-a")
            && shown.contains("URL allow-list:  *.corp.internal"),
        "{shown}"
    );
    run(&["assign", "gw1", "team-a", "team-c"]);
    run(&["unassign", "gw1", "team-b"]);
    run(&[
        "update",
        "gw1",
        "--allow-url-host",
        "*.corp.internal",
        "--allow-url-host",
        "10.0.0.0/8",
    ]);
    run(&["update", "gw1", "--clear-allow-list"]);
    assert_eq!(
        kms.seen(),
        [
            "GET /v1/gateways/gw1 Bearer t",
            "POST /v1/gateways/gw1/projects Bearer t",
            "POST /v1/gateways/gw1/projects Bearer t",
            "DELETE /v1/gateways/gw1/projects/team-b Bearer t",
            "PATCH /v1/gateways/gw1 Bearer t",
            "PATCH /v1/gateways/gw1 Bearer t",
        ]
    );
    let bodies: Vec<serde_json::Value> = kms
        .bodies()
        .iter()
        .map(|b| serde_json::from_str(b).unwrap_or(serde_json::Value::Null))
        .collect();
    assert_eq!(bodies[1], serde_json::json!({"project": "team-a"}));
    assert_eq!(bodies[2], serde_json::json!({"project": "team-c"}));
    assert_eq!(
        bodies[4],
        serde_json::json!({"allowed_url_hosts": ["*.corp.internal", "10.0.0.0/8"]})
    );
    assert_eq!(bodies[5], serde_json::json!({"allowed_url_hosts": []}));

    // Usage errors: nothing to change, both at once, no project.
    for args in [
        &["update", "gw1"][..],
        &[
            "update",
            "gw1",
            "--allow-url-host",
            "a.b",
            "--clear-allow-list",
        ],
        &["assign", "gw1"],
    ] {
        let output = kms_pam(
            home.path(),
            &[&["--url", &kms.url, "--token", "t", "gateway"], args].concat(),
        );
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    assert_eq!(kms.seen().len(), 6, "usage errors send nothing");
}

/// Issue 20: how CLIs reach each gateway, in the table's REACH column and in `show`, as the
/// gateway's last heartbeat said; JSON carries `reach` as KMS sent it; a gateway not enrolled
/// is reached no way yet.
#[test]
fn gateway_list_and_show_say_how_each_gateway_is_reached() {
    let gateway = |name: &str, status: &str, reach: &str| {
        format!(
            r#"{{"name":"{name}","address":"10.0.0.5:8443","status":"{status}",
            "last_heartbeat":null,"created_at":"2026-01-01T10:00:00Z","reach":{reach}}}"#
        )
    };
    let relayed = r#"{"direct":false,"relays":[{"url":"r1.example:443","connected":true},
        {"url":"r2.example:443","connected":false}]}"#;
    let both = r#"{"direct":true,"relays":[{"url":"r1.example:443","connected":true}]}"#;
    let list = format!(
        "[{},{},{},{}]",
        gateway("gw-direct", "online", r#"{"direct":true,"relays":[]}"#),
        gateway("gw-relayed", "online", relayed),
        gateway("gw-both", "offline", both),
        // An older KMS sends no reach: directly.
        r#"{"name":"gw-old","address":"10.0.0.6:8443","status":"online","last_heartbeat":null,
            "created_at":"2026-01-01T10:00:00Z"}"#,
    );
    let pending = gateway("gw-new", "pending", r#"{"direct":true,"relays":[]}"#);
    let kms = FakeKms::routes(vec![
        ("GET /v1/gateways", 200, list),
        (
            "GET /v1/gateways/gw-relayed",
            200,
            gateway("gw-relayed", "online", relayed),
        ),
        ("GET /v1/gateways/gw-new", 200, pending),
    ]);
    let home = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let output = kms_pam(
            home.path(),
            &[&["--url", &kms.url, "--token", "t", "gateway"], args].concat(),
        );
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        stdout(&output)
    };
    let table = run(&["list"]);
    let lines: Vec<&str> = table.lines().collect();
    let reach_at = lines[0].find("REACH").unwrap();
    assert!(lines[0][..reach_at].contains("ADDRESS"), "{table}");
    let reach_of = |line: &str| line[reach_at..].split("  ").next().unwrap_or("").to_owned();
    assert_eq!(reach_of(lines[1]), "direct", "{table}");
    assert_eq!(
        reach_of(lines[2]),
        "relays r1.example:443 (up), r2.example:443 (down)",
        "{table}"
    );
    assert_eq!(
        reach_of(lines[3]),
        "direct + relays r1.example:443 (up)",
        "{table}"
    );
    assert_eq!(reach_of(lines[4]), "direct", "{table}");

    let json: serde_json::Value = serde_json::from_str(&run(&["list", "-o", "json"])).unwrap();
    assert_eq!(
        json[1]["reach"],
        serde_json::from_str::<serde_json::Value>(relayed).unwrap()
    );
    assert_eq!(
        json[3]["reach"],
        serde_json::json!({"direct": true, "relays": []})
    );

    let shown = run(&["show", "gw-relayed"]);
    assert!(
        shown.contains("Reach:           relays r1.example:443 (up), r2.example:443 (down)\n"),
        "{shown}"
    );
    let shown = run(&["show", "gw-new"]);
    assert!(shown.contains("Reach:           -\n"), "{shown}");
}
