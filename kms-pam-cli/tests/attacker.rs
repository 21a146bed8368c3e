//! Issue 14's attacker: someone who can write KMS's database (but holds neither the gateway's
//! key nor KMS's) edits the SQLite file directly. `pam sessions verify` (the real CLI against
//! the real server) must tell each edit apart with its own exit code, and an exported bundle
//! must verify offline against the fingerprints the gateway and KMS printed, and fail after any
//! edit.

use std::path::Path;

use kms_pam::audit::evidence::chain::event_hash;
use kms_pam::audit::evidence::signing::{event_message, SigningKey};
use kms_pam::audit::AuditEvent;
use kms_pam_tests::apiserver::{ApiServerDouble, DoubleConfig};
use serde_json::Value;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::SqlitePool;

use crate::support::world::{access_with, finish, kill, world, World};

const ALTERED: i32 = 3;
const TRUNCATED: i32 = 4;
const METADATA_CHANGED: i32 = 5;
const UNSEALED: i32 = 7;

/// One sealed session: `pam access` ran two kubectl commands and waited for the record.
async fn session(world: &World) -> String {
    let before = session_ids(world).await;
    let script = "kubectl get pods >/dev/null && kubectl get configmaps >/dev/null";
    let out = finish(access_with(world, &["--reason", "INC-42"], script)).await;
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    // Sessions opened within one second list in no particular order: take the new one.
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

async fn database(world: &World) -> SqlitePool {
    let options = SqliteConnectOptions::new()
        .filename(world.kms_data().join("kms.db"))
        .busy_timeout(std::time::Duration::from_secs(5));
    SqlitePool::connect_with(options)
        .await
        .expect("open kms.db")
}

/// `(seq, id, event JSON)` of a session's stored events, by seq.
async fn events(db: &SqlitePool, id: &str) -> Vec<(i64, String, Value)> {
    let rows: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT seq, id, event FROM session_events WHERE session_id = $1 ORDER BY seq",
    )
    .bind(id)
    .fetch_all(db)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(seq, id, json)| (seq, id, serde_json::from_str(&json).unwrap()))
        .collect()
}

/// Turns the session's `list pods` into `list secrets` and recomputes every hash from there on,
/// as an attacker who knows the chain's format would. Returns the seq and id of the event.
async fn rewrite_and_rehash(db: &SqlitePool, id: &str) -> (i64, String) {
    let mut stored = events(db, id).await;
    let at = stored
        .iter()
        .position(|(_, _, e)| e["type"] == "request_started" && e["info"]["resource"] == "pods")
        .expect("a request for pods");
    let event = &mut stored[at].2;
    let path = event["path"].as_str().unwrap().replace("/pods", "/secrets");
    event["path"] = Value::from(path);
    event["info"]["resource"] = Value::from("secrets");
    for i in at..stored.len() {
        if i > 0 {
            let prev = stored[i - 1].2["hash"].clone();
            stored[i].2["prev_hash"] = prev;
        }
        let parsed: AuditEvent = serde_json::from_value(stored[i].2.clone()).unwrap();
        let hash = event_hash(&parsed).unwrap();
        stored[i].2["hash"] = Value::from(hash.clone());
        sqlx::query("UPDATE session_events SET event = $1, hash = $2 WHERE id = $3")
            .bind(stored[i].2.to_string())
            .bind(&hash)
            .bind(&stored[i].1)
            .execute(db)
            .await
            .unwrap();
    }
    (stored[at].0, stored[at].1.clone())
}

async fn execute(db: &SqlitePool, sql: &str, id: &str) {
    sqlx::query(sql).bind(id).execute(db).await.unwrap();
}

/// The first `SHA256:…` fingerprint on the line of `file` that contains `marker`.
fn fingerprint(file: &Path, marker: &str) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("no {marker:?} in {}:\n{text}", file.display()));
    let start = line.find("SHA256:").expect("a fingerprint");
    line[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '+' | '/'))
        .collect()
}

async fn verify(world: &World, id: &str) -> (Option<i32>, String) {
    let out = world.run(&["pam", "sessions", "verify", id]).await;
    (out.code, out.stdout + &out.stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_database_edit_is_caught_with_its_own_exit_code() {
    let double = ApiServerDouble::start(DoubleConfig::default())
        .await
        .expect("double");
    let (world, mut server, mut gateway) = world(&double).await;
    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(session(&world).await);
    }
    for id in &ids {
        let (code, out) = verify(&world, id).await;
        assert_eq!(code, Some(0), "{out}");
        assert!(out.contains("head signed by KMS"), "{out}");
    }
    let db = database(&world).await;

    // Rewritten and re-hashed: the gateway's signature no longer matches.
    let (seq, event) = rewrite_and_rehash(&db, &ids[0]).await;
    let (code, out) = verify(&world, &ids[0]).await;
    assert_eq!(code, Some(ALTERED), "{out}");
    assert!(
        out.starts_with(&format!("altered at seq {seq} ({event}): ")),
        "{out}"
    );

    // The tail deleted, the session's end with it.
    execute(
        &db,
        "DELETE FROM session_events WHERE session_id = $1 AND seq > \
         (SELECT MAX(seq) - 3 FROM session_events WHERE session_id = $1)",
        &ids[1],
    )
    .await;
    let (code, out) = verify(&world, &ids[1]).await;
    assert_eq!(code, Some(TRUNCATED), "{out}");
    assert!(out.starts_with("truncated: "), "{out}");

    // Every event deleted.
    execute(
        &db,
        "DELETE FROM session_events WHERE session_id = $1",
        &ids[2],
    )
    .await;
    let (code, out) = verify(&world, &ids[2]).await;
    assert_eq!(code, Some(TRUNCATED), "{out}");
    assert!(out.contains("only 0 events are stored"), "{out}");

    // The session's metadata edited.
    execute(
        &db,
        "UPDATE sessions SET user_name = 'mallory' WHERE id = $1",
        &ids[3],
    )
    .await;
    let (code, out) = verify(&world, &ids[3]).await;
    assert_eq!(code, Some(METADATA_CHANGED), "{out}");
    assert!(out.starts_with("metadata changed (user): "), "{out}");
    assert!(out.contains("\"admin\""), "names what was signed: {out}");
    execute(
        &db,
        "UPDATE sessions SET reason = 'routine check' WHERE id = $1",
        &ids[4],
    )
    .await;
    let (code, out) = verify(&world, &ids[4]).await;
    assert_eq!(code, Some(METADATA_CHANGED), "{out}");
    assert!(out.starts_with("metadata changed (reason): "), "{out}");

    // The session moved to another project: its auditors find it there, and not intact. The
    // real gateway signed the project KMS told it into the session's start.
    let created = world.run(&["project", "create", "other"]).await;
    assert_eq!(created.code, Some(0), "{}", created.stderr);
    execute(
        &db,
        "UPDATE sessions SET project_id = (SELECT id FROM projects WHERE name = 'other') \
         WHERE id = $1",
        &ids[5],
    )
    .await;
    let moved = world
        .run(&["--project", "other", "pam", "sessions", "verify", &ids[5]])
        .await;
    let out = moved.stdout + &moved.stderr;
    assert_eq!(moved.code, Some(METADATA_CHANGED), "{out}");
    assert!(out.starts_with("metadata changed (project_id): "), "{out}");

    // Deleting KMS's signed head as well does not help: a read never signs a head again, and
    // the ended session without one is truncated.
    execute(
        &db,
        "DELETE FROM session_heads WHERE session_id = $1",
        &ids[3],
    )
    .await;
    let (code, out) = verify(&world, &ids[3]).await;
    assert_eq!(code, Some(TRUNCATED), "{out}");
    assert!(out.contains("KMS head missing"), "{out}");
    db.close().await;
    kill(&mut gateway).await;
    kill(&mut server).await;
    double.shutdown().await;
}

/// Re-signs every event of the session with `key`, as an attacker holding their own key would.
async fn resign(db: &SqlitePool, id: &str, key: &SigningKey) {
    for (_, event_id, mut event) in events(db, id).await {
        let hash = event["hash"].as_str().unwrap().to_owned();
        event["sig"] = Value::from(key.sign(&event_message(&hash)));
        sqlx::query("UPDATE session_events SET event = $1 WHERE id = $2")
            .bind(event.to_string())
            .bind(&event_id)
            .execute(db)
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_head_or_a_swapped_gateway_key_is_not_intact() {
    let double = ApiServerDouble::start(DoubleConfig::default())
        .await
        .expect("double");
    let (world, mut server, mut gateway) = world(&double).await;
    let (emptied, resigned) = (session(&world).await, session(&world).await);
    let relabelled = session(&world).await;
    let db = database(&world).await;

    // How the session ended relabelled and KMS's head deleted, so that KMS would sign the
    // edited end: a read never signs a head, so the ended session lacks one.
    execute(
        &db,
        "DELETE FROM session_heads WHERE session_id = $1",
        &relabelled,
    )
    .await;
    execute(
        &db,
        "UPDATE sessions SET status = 'terminated', end_cause = 'termination', \
         ended_at = ended_at + 600 WHERE id = $1",
        &relabelled,
    )
    .await;
    let (code, out) = verify(&world, &relabelled).await;
    assert_eq!(code, Some(TRUNCATED), "{out}");
    assert!(out.starts_with("truncated: KMS head missing"), "{out}");

    // The head and every event deleted: KMS cannot tell it from a session nobody used, so it
    // is not called intact (issue 14's `intact (0 events)`).
    execute(
        &db,
        "DELETE FROM session_heads WHERE session_id = $1",
        &emptied,
    )
    .await;
    execute(
        &db,
        "DELETE FROM session_events WHERE session_id = $1",
        &emptied,
    )
    .await;
    let (code, out) = verify(&world, &emptied).await;
    assert_eq!(code, Some(UNSEALED), "{out}");
    assert!(out.starts_with("unsealed: 0 events so far"), "{out}");

    // The gateway's key swapped for the attacker's in the database, every event re-signed
    // with it and KMS's head deleted: the session is bound to the real key (KMS signed that
    // binding when it created the session), and KMS signs no head over another.
    let attacker = SigningKey::generate().unwrap().0;
    sqlx::query("UPDATE gateway_audit_keys SET public_key = $1")
        .bind(attacker.public_key().to_base64())
        .execute(&db)
        .await
        .unwrap();
    resign(&db, &resigned, &attacker).await;
    execute(
        &db,
        "DELETE FROM session_heads WHERE session_id = $1",
        &resigned,
    )
    .await;
    let (code, out) = verify(&world, &resigned).await;
    assert_eq!(code, Some(ALTERED), "{out}");
    assert!(out.contains("not signed by the gateway's key"), "{out}");
    let heads: Vec<(String,)> =
        sqlx::query_as("SELECT session_id FROM session_heads WHERE session_id = $1")
            .bind(&resigned)
            .fetch_all(&db)
            .await
            .unwrap();
    assert!(heads.is_empty(), "KMS signed no head over the swapped key");
    // Endorsing it themselves does not help: the endorsement is KMS's signature.
    sqlx::query("UPDATE gateway_audit_keys SET endorsement = $1")
        .bind(attacker.sign(b"anything"))
        .execute(&db)
        .await
        .unwrap();
    let (code, out) = verify(&world, &resigned).await;
    assert_eq!(code, Some(ALTERED), "{out}");
    db.close().await;
    kill(&mut gateway).await;
    kill(&mut server).await;
    double.shutdown().await;
}

/// An edit of an exported bundle.
type Edit = fn(&mut Value);

/// `verify-bundle PATH --gateway-key G --kms-key K`.
async fn check(world: &World, path: &Path, gateway: &str, kms: &str) -> (Option<i32>, String) {
    let path = path.to_str().unwrap();
    let args = [
        "verify-bundle",
        path,
        "--gateway-key",
        gateway,
        "--kms-key",
        kms,
    ];
    let out = world.run(&args).await;
    (out.code, out.stdout + &out.stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exported_bundle_verifies_offline_and_fails_after_any_edit() {
    let double = ApiServerDouble::start(DoubleConfig::default())
        .await
        .expect("double");
    let (world, mut server, mut gateway) = world(&double).await;
    let id = session(&world).await;
    let home = world.home.path();
    let file = home.join("bundle.json");
    let file_arg = file.to_str().unwrap();
    world
        .ok(&["pam", "sessions", "export", &id, "--out", file_arg])
        .await;
    // KMS and the gateway went away: the bundle and the fingerprints they printed suffice.
    kill(&mut gateway).await;
    kill(&mut server).await;
    let gateway_key = fingerprint(&home.join("gateway.log"), "created the gateway's audit key");
    let kms_key = fingerprint(&home.join("kms.out"), "KMS audit key");
    let (code, out) = check(&world, &file, &gateway_key, &kms_key).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("intact ("), "{out}");

    let bundle: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let edited = home.join("edited.json");
    let edits: [(&str, Edit, i32); 4] = [
        (
            "an event",
            |b| b["events"][3]["path"] = Value::from("/api/v1/secrets"),
            ALTERED,
        ),
        (
            "the tail",
            |b| {
                let events = b["events"].as_array_mut().unwrap();
                events.truncate(events.len() - 2);
            },
            TRUNCATED,
        ),
        (
            "the user",
            |b| b["session"]["user"] = Value::from("mallory"),
            METADATA_CHANGED,
        ),
        (
            "the signed head",
            |b| b["head"]["head"]["last_seq"] = Value::from(3),
            ALTERED,
        ),
    ];
    for (what, edit, expected) in edits {
        let mut copy = bundle.clone();
        edit(&mut copy);
        std::fs::write(&edited, copy.to_string()).unwrap();
        let (code, out) = check(&world, &edited, &gateway_key, &kms_key).await;
        assert_eq!(code, Some(expected), "after editing {what}: {out}");
    }
    // KMS's head removed: an unsealed bundle is never plain intact. With the tail cut and the
    // status set back to active it reads as a session exported while active: exit 7 unless
    // the verifier accepts unsealed records, and then it says so.
    let mut copy = bundle.clone();
    copy["head"] = Value::Null;
    copy["session"]["status"] = Value::from("active");
    let events = copy["events"].as_array_mut().unwrap();
    events.truncate(events.len() - 2);
    std::fs::write(&edited, copy.to_string()).unwrap();
    let (code, out) = check(&world, &edited, &gateway_key, &kms_key).await;
    assert_eq!(code, Some(UNSEALED), "{out}");
    assert!(out.starts_with("unsealed: "), "{out}");
    let out = world
        .run(&[
            "verify-bundle",
            edited.to_str().unwrap(),
            "--gateway-key",
            &gateway_key,
            "--kms-key",
            &kms_key,
            "--allow-unsealed",
        ])
        .await;
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.starts_with("unsealed: "), "{}", out.stdout);
    // The same, exported (so it claims) after the expiry the gateway signed: truncated even
    // when unsealed records are accepted.
    copy["exported_at"] = Value::from("2999-01-01T00:00:00Z");
    std::fs::write(&edited, copy.to_string()).unwrap();
    let (code, out) = check(&world, &edited, &gateway_key, &kms_key).await;
    assert_eq!(code, Some(TRUNCATED), "{out}");
    // No events and no head, ended: exit 7, not intact.
    let mut copy = bundle.clone();
    copy["head"] = Value::Null;
    copy["events"] = Value::Array(Vec::new());
    std::fs::write(&edited, copy.to_string()).unwrap();
    let (code, out) = check(&world, &edited, &gateway_key, &kms_key).await;
    assert_eq!(code, Some(UNSEALED), "{out}");

    // Keys that are not the ones the gateway and KMS printed are refused outright.
    let out = world
        .run(&[
            "verify-bundle",
            file_arg,
            "--gateway-key",
            &kms_key,
            "--kms-key",
            &kms_key,
        ])
        .await;
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("not the SHA256:"), "{}", out.stderr);
    double.shutdown().await;
}
