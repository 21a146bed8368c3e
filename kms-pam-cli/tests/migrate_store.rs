//! `kms-pam server migrate-store` end to end (docs/operations.md, issue 13): a SQLite KMS records real
//! sessions (the gateway, `pam access`, kubectl against the API server double); the server
//! stops; `migrate-store --from sqlite://… --to postgres://…` copies the store into a throwaway
//! PostgreSQL cluster; a `kms-pam server` on the copy (same root key, same address) answers
//! `pam sessions show` as before and `pam sessions verify` says intact for every session. A
//! session's tail deleted from the copy afterwards is reported truncated, so the verdicts come
//! from the copied rows.

use std::process::Stdio;
use std::time::Duration;

use kms_pam_tests::apiserver::{ApiServerDouble, DoubleConfig};
use sqlx::PgPool;
use tokio::process::{Child, Command};

use crate::support::pg::Cluster;
use crate::support::procs::output_of;
use crate::support::world::{access, finish, kill, world, World};
use crate::support::BIN as CLI;

/// Exit code of `pam sessions verify` for a chain missing its end (docs/cli.md).
const TRUNCATED: i32 = 4;

/// Runs `script` in a session and returns the session's id, once it is over.
async fn session(world: &World, script: &str) -> String {
    let before = session_ids(world).await;
    let out = finish(access(world, script)).await;
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    let mut new: Vec<String> = session_ids(world)
        .await
        .into_iter()
        .filter(|id| !before.contains(id))
        .collect();
    assert_eq!(new.len(), 1, "one new session");
    new.remove(0)
}

async fn session_ids(world: &World) -> Vec<String> {
    let list = world.json(&["pam", "sessions", "list", "-o", "json"]).await;
    list.as_array()
        .expect("a list")
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_owned())
        .collect()
}

/// Stops a process with SIGTERM (KMS closes its database cleanly) and waits for it.
async fn terminate(child: &mut Child) {
    let pid = child.id().expect("running").to_string();
    let sent = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .expect("kill -TERM");
    assert!(sent.success());
    tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("KMS stopped on SIGTERM")
        .expect("wait");
}

/// `kms-pam server` on the PostgreSQL copy, at the old server's address and with its root key.
fn server_on_postgres(world: &World, database: &str) -> Child {
    Command::new(CLI)
        .args([
            "server",
            "--listen",
            &format!("127.0.0.1:{}", world.kms_port),
        ])
        .arg("--data-dir")
        .arg(world.home.path().join("pg-kms-data"))
        .args(["--database", database])
        .arg("--root-key")
        .arg(world.kms_data().join("root.key"))
        .env("HOME", world.home.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start kms-pam server on PostgreSQL")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_store_with_sessions_moves_to_postgres_and_verifies_intact() {
    let double = ApiServerDouble::start(DoubleConfig::default())
        .await
        .expect("double");
    let (world, mut server, mut gateway) = world(&double).await;
    let mut ids = Vec::new();
    for script in [
        "kubectl get pods >/dev/null",
        "kubectl get pods >/dev/null && kubectl get configmaps -A >/dev/null",
    ] {
        ids.push(session(&world, script).await);
    }
    let mut before = Vec::new();
    for id in &ids {
        let verify = world.run(&["pam", "sessions", "verify", id]).await;
        assert_eq!(verify.code, Some(0), "on SQLite: {}", verify.stdout);
        before.push((world.show(id).await, verify.stdout));
    }
    kill(&mut gateway).await;
    terminate(&mut server).await;

    let cluster = Cluster::start().await;
    let from = format!("sqlite://{}", world.kms_data().join("kms.db").display());
    let mut migrate = Command::new(CLI);
    migrate
        .args([
            "server",
            "migrate-store",
            "--from",
            &from,
            "--to",
            &cluster.url(),
        ])
        .env("HOME", world.home.path())
        .kill_on_drop(true);
    let out = output_of(migrate, Duration::from_secs(120)).await;
    assert_eq!(
        out.code,
        Some(0),
        "migrate-store: {}{}",
        out.stdout,
        out.stderr
    );
    assert!(
        out.stdout
            .contains("verified: row counts equal, 2 session event chains identical"),
        "{}",
        out.stdout
    );

    // Migrating into the now full database again is refused, and changes nothing.
    let mut again = Command::new(CLI);
    again
        .args([
            "server",
            "migrate-store",
            "--from",
            &from,
            "--to",
            &cluster.url(),
        ])
        .env("HOME", world.home.path())
        .kill_on_drop(true);
    let out = output_of(again, Duration::from_secs(120)).await;
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("already holds a store"),
        "{}",
        out.stderr
    );

    let _server = server_on_postgres(&world, &cluster.url());
    world.wait_kms().await;
    assert!(
        !world.home.path().join("pg-kms-data/admin.token").exists(),
        "the copy's admin is the old one: no new admin was made"
    );
    for (id, (show, verdict)) in ids.iter().zip(&before) {
        let verify = world.run(&["pam", "sessions", "verify", id]).await;
        assert_eq!(
            verify.code,
            Some(0),
            "on the copy: {}{}",
            verify.stdout,
            verify.stderr
        );
        assert!(
            verify.stdout.starts_with("intact (") && verify.stdout.contains("head signed by KMS"),
            "{}",
            verify.stdout
        );
        assert_eq!(&verify.stdout, verdict, "the same verdict as on SQLite");
        assert_eq!(&world.show(id).await, show, "the same session and commands");
    }
    let commands = world.commands(&ids[1]).await;
    assert_eq!(commands, ["kubectl get", "kubectl get"], "{commands:?}");

    // The verdict comes from the copied rows: a tail deleted from the copy is seen.
    let db = PgPool::connect(&cluster.url()).await.expect("connect");
    sqlx::query(
        "DELETE FROM session_events WHERE session_id = $1 AND seq = \
         (SELECT MAX(seq) FROM session_events WHERE session_id = $1)",
    )
    .bind(&ids[0])
    .execute(&db)
    .await
    .expect("delete the last event");
    db.close().await;
    let verify = world.run(&["pam", "sessions", "verify", &ids[0]]).await;
    assert_eq!(
        verify.code,
        Some(TRUNCATED),
        "{}{}",
        verify.stdout,
        verify.stderr
    );
}
