//! Taking access away takes effect (security invariant 9, docs/security.md): the token stops working, the affected sessions
//! end with their cause recorded, and the gateways following the change log hear of it at once.

use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::{json, Value};

use super::replicas::replica;
use super::{Kms, SA_TOKEN};
use crate::server::store::postgres::test_cluster::TestCluster;

/// A KMS with gateway `gw`, resource `prod` and member `alice` granted `prod/admin`, with an open
/// session; returns the kms, alice's token, the gateway's token, the session id and the grant.
async fn world() -> (Kms, String, String, String, String) {
    let kms = Kms::start().await;
    let gateway = kms.gateway("gw").await;
    kms.resource("prod", "gw").await;
    let alice = kms.user("alice", false).await;
    let grant = kms.grant("prod", "alice", 600).await;
    let session = kms.session_id("/v1", &alice, "prod").await;
    (kms, alice, gateway, session, grant)
}

/// The session's status and cause as the admin sees them.
async fn ended(kms: &Kms, id: &str) -> (String, String) {
    let shown = kms
        .get(&format!("/v1/sessions/{id}"), &kms.admin)
        .await
        .expect(StatusCode::OK);
    let text = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    (text(&shown["status"]), text(&shown["end_cause"]))
}

/// Waits on the change long poll from `after` until the session's change arrives; returns the
/// status it carries and how long the wait took.
async fn change_of(kms: &Kms, gateway: &str, after: u64, id: &str) -> (String, Duration) {
    let started = Instant::now();
    let path = format!("/v1/gateway/changes?after={after}&wait_secs=10");
    let changes = kms.get(&path, gateway).await.expect(StatusCode::OK);
    let change = changes["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["session_id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("no change of {id}: {changes}"));
    (
        change["status"].as_str().unwrap().to_owned(),
        started.elapsed(),
    )
}

async fn current_seq(kms: &Kms, gateway: &str) -> u64 {
    let now = kms.get("/v1/gateway/changes?after=0", gateway).await;
    now.expect(StatusCode::OK)["seq"].as_u64().unwrap()
}

#[tokio::test]
async fn disabling_a_user_refuses_their_token_and_ends_their_sessions_at_once() {
    let (kms, alice, gateway, session, _) = world().await;
    let seq = current_seq(&kms, &gateway).await;
    let poll = change_of(&kms, &gateway, seq, &session);
    let disable = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        kms.post("/v1/users/alice/disable", &kms.admin, Value::Null)
            .await
            .expect(StatusCode::OK)
    };
    let ((status, waited), user) = tokio::join!(poll, disable);
    assert_eq!(user["disabled"], true);
    assert_eq!(status, "terminated");
    assert!(
        waited < Duration::from_secs(2),
        "the gateway heard after {waited:?}"
    );
    assert_eq!(
        ended(&kms, &session).await,
        ("terminated".into(), "user_disabled".into())
    );
    let refused = kms.get("/v1/whoami", &alice).await;
    assert_eq!(
        (refused.status, refused.message()),
        (
            StatusCode::UNAUTHORIZED,
            "user alice is disabled; an organisation administrator can enable it again"
        )
    );
    let listed = kms
        .get("/v1/users", &kms.admin)
        .await
        .expect(StatusCode::OK);
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["name"] == "alice" && u["disabled"] == true));
    kms.post("/v1/users/alice/enable", &kms.admin, Value::Null)
        .await
        .expect(StatusCode::OK);
    kms.get("/v1/whoami", &alice).await.expect(StatusCode::OK);
    assert_eq!(
        ended(&kms, &session).await.0,
        "terminated",
        "enabling brings no session back"
    );
    let myself = kms
        .post("/v1/users/admin/disable", &kms.admin, Value::Null)
        .await;
    assert_eq!(myself.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn rotating_a_token_revokes_the_old_one_and_deleting_a_user_frees_the_name() {
    let (kms, alice, _, session, _) = world().await;
    let rotated = kms
        .post("/v1/users/alice/token", &kms.admin, Value::Null)
        .await
        .expect(StatusCode::OK);
    let new = rotated["token"].as_str().unwrap().to_owned();
    assert_ne!(new, alice);
    assert_eq!(
        kms.get("/v1/whoami", &alice).await.status,
        StatusCode::UNAUTHORIZED
    );
    kms.get("/v1/whoami", &new).await.expect(StatusCode::OK);
    assert_eq!(
        ended(&kms, &session).await,
        ("terminated".into(), "token_revoked".into())
    );
    let second = kms.session_id("/v1", &new, "prod").await;
    kms.delete("/v1/users/ALICE", &kms.admin)
        .await
        .expect(StatusCode::NO_CONTENT);
    assert_eq!(
        kms.get("/v1/whoami", &new).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        ended(&kms, &second).await,
        ("terminated".into(), "user_deleted".into())
    );
    // The history keeps the name; the name is free again, and the grant went with the user.
    let history = kms.get("/v1/sessions?user=alice", &kms.admin).await;
    assert_eq!(history.expect(StatusCode::OK).as_array().unwrap().len(), 2);
    kms.user("alice", false).await;
    let grants = kms
        .get("/v1/grants", &kms.admin)
        .await
        .expect(StatusCode::OK);
    assert_eq!(grants, json!([]));
}

#[tokio::test]
async fn user_names_are_unique_regardless_of_case() {
    let kms = Kms::start().await;
    kms.user("bob", false).await;
    let taken = kms
        .post("/v1/users", &kms.admin, json!({"name": "Bob"}))
        .await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    assert!(
        taken.message().contains("regardless of case"),
        "{}",
        taken.message()
    );
    let admin = kms
        .post("/v1/users", &kms.admin, json!({"name": "ADMIN"}))
        .await;
    assert_eq!(admin.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn deleting_the_grant_ends_the_sessions_opened_under_it() {
    let (kms, alice, gateway, session, grant) = world().await;
    let seq = current_seq(&kms, &gateway).await;
    kms.delete(&format!("/v1/grants/{grant}"), &kms.admin)
        .await
        .expect(StatusCode::NO_CONTENT);
    let (status, _) = change_of(&kms, &gateway, seq, &session).await;
    assert_eq!(status, "terminated");
    // Its owner still reads it, and learns why.
    let own = kms
        .get(&format!("/v1/sessions/{session}?commands=false"), &alice)
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        (own["status"].as_str(), own["end_cause"].as_str()),
        (Some("terminated"), Some("grant_deleted"))
    );
    let again = kms.open_session(&alice, "prod", 60).await;
    assert_eq!(again.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn removing_a_member_or_demoting_them_ends_their_sessions() {
    let (kms, alice, _, session, _) = world().await;
    kms.project("team-a").await;
    kms.member("team-a", "alice", "member").await;
    kms.resource_at("/v1/projects/team-a", "prod", "gw").await;
    kms.grant_at("/v1/projects/team-a", "prod", "alice", 600)
        .await;
    let in_a = kms.session_id("/v1/projects/team-a", &alice, "prod").await;
    kms.delete("/v1/projects/team-a/members/alice", &kms.admin)
        .await
        .expect(StatusCode::NO_CONTENT);
    let own = kms
        .get(&format!("/v1/projects/team-a/sessions/{in_a}"), &alice)
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        own["end_cause"], "membership_removed",
        "the owner still learns why"
    );
    let resources = kms.get("/v1/projects/team-a/resources", &alice).await;
    assert_eq!(resources.status, StatusCode::NOT_FOUND);
    assert_eq!(
        ended(&kms, &session).await.0,
        "active",
        "other projects are untouched"
    );
    // In default, alice becomes an auditor: her session there ends, she can open none.
    kms.member("default", "alice", "auditor").await;
    assert_eq!(
        ended(&kms, &session).await,
        ("terminated".into(), "role_changed".into())
    );
    assert_eq!(
        kms.open_session(&alice, "prod", 60).await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn a_revoked_gateway_is_refused_its_sessions_end_and_it_can_enroll_again() {
    let (kms, alice, gateway, session, _) = world().await;
    let seq = current_seq(&kms, &gateway).await;
    // A gateway's pending long poll still hears that its sessions ended.
    let poll = change_of(&kms, &gateway, seq, &session);
    let revoke = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        kms.post("/v1/gateways/gw/revoke", &kms.admin, Value::Null)
            .await
            .expect(StatusCode::OK)
    };
    let ((status, _), revoked) = tokio::join!(poll, revoke);
    assert_eq!(status, "terminated");
    assert_eq!(revoked["status"], "revoked");
    assert_eq!(
        ended(&kms, &session).await,
        ("terminated".into(), "gateway_revoked".into())
    );
    for path in [
        "/v1/whoami".to_owned(),
        format!("/v1/gateway/sessions/{session}/credential"),
        "/v1/gateway/changes?after=0".to_owned(),
    ] {
        assert_eq!(
            kms.get(&path, &gateway).await.status,
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
    }
    let refused = kms.open_session(&alice, "prod", 60).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert!(
        refused.message().contains("revoked"),
        "{}",
        refused.message()
    );
    // A new `gateway create` of the same name hands out an enrollment token; enrolling again
    // brings the gateway and its resources back.
    let created = kms
        .post("/v1/gateways", &kms.admin, json!({"name": "gw"}))
        .await
        .expect(StatusCode::CREATED);
    let token = created["enrollment_token"].as_str().unwrap();
    let (_key, csr) = crate::tls::generate_csr("gw").unwrap();
    let body = json!({"name": "gw", "enrollment_token": token, "csr": csr,
                      "address": "127.0.0.1:8443"});
    let enrolled = kms
        .call(Method::POST, "/v1/gateways/enroll", None, body)
        .await
        .expect(StatusCode::OK);
    let new_token = enrolled["gateway_token"].as_str().unwrap();
    kms.get("/v1/whoami", new_token)
        .await
        .expect(StatusCode::OK);
    kms.open_session(&alice, "prod", 60)
        .await
        .expect(StatusCode::CREATED);
    kms.assert_never_leaked(SA_TOKEN);
}

/// How a race round takes access away from `alice` (and how the next round gives it back).
#[derive(Clone, Copy, Debug)]
enum Revocation {
    GrantDeleted,
    MembershipRemoved,
    UserDisabled,
}

/// Opens a session as alice while the revocation runs, `ROUNDS` times, the revocation starting
/// a little later each round so it lands before, inside and after the opening's checks. Whoever
/// wins, no session may be left active: either the opening is refused, or its session ends.
async fn race_openings_against(kms: &Kms, alice: &str, revocation: Revocation) -> (u32, u32) {
    const ROUNDS: u32 = 40;
    let (mut opened, mut refused) = (0, 0);
    for round in 0..ROUNDS {
        let grant = kms.grant("prod", "alice", 600).await;
        let (path, method) = match revocation {
            Revocation::GrantDeleted => (format!("/v1/grants/{grant}"), Method::DELETE),
            Revocation::MembershipRemoved => (
                "/v1/projects/default/members/alice".to_owned(),
                Method::DELETE,
            ),
            Revocation::UserDisabled => ("/v1/users/alice/disable".to_owned(), Method::POST),
        };
        let revoke = async {
            tokio::time::sleep(Duration::from_micros(u64::from(round % 20) * 250)).await;
            let reply = kms.call(method, &path, Some(&kms.admin), Value::Null).await;
            assert!(reply.status.is_success(), "{revocation:?}: {}", reply.json);
        };
        let (reply, ()) = tokio::join!(kms.open_session(alice, "prod", 300), revoke);
        if reply.status == StatusCode::CREATED {
            opened += 1;
            let id = reply.json["session"]["id"].as_str().unwrap();
            let (status, cause) = ended(kms, id).await;
            assert_ne!(
                status, "active",
                "{revocation:?}, round {round}: session {id} outlived the revocation"
            );
            assert_ne!(cause, "-", "{revocation:?}: {id} ended without a cause");
        } else {
            refused += 1;
            assert!(
                [401, 403, 404].contains(&reply.status.as_u16()),
                "{revocation:?}: refused with {}: {}",
                reply.status,
                reply.json
            );
        }
        // Give access back for the next round.
        match revocation {
            Revocation::GrantDeleted => {}
            Revocation::MembershipRemoved => kms.member("default", "alice", "member").await,
            Revocation::UserDisabled => {
                kms.post("/v1/users/alice/enable", &kms.admin, Value::Null)
                    .await
                    .expect(StatusCode::OK);
                kms.delete(&format!("/v1/grants/{grant}"), &kms.admin)
                    .await
                    .expect(StatusCode::NO_CONTENT);
            }
        }
    }
    (opened, refused)
}

/// Deleting a grant, removing a membership or disabling a user while the user opens a session:
/// the session is refused or ended, never left running (on both store engines).
async fn no_session_outlives_a_concurrent_revocation(kms: Kms) {
    kms.gateway("gw").await;
    kms.resource("prod", "gw").await;
    let alice = kms.user("alice", false).await;
    for revocation in [
        Revocation::GrantDeleted,
        Revocation::MembershipRemoved,
        Revocation::UserDisabled,
    ] {
        let (opened, refused) = race_openings_against(&kms, &alice, revocation).await;
        eprintln!("{revocation:?}: {opened} opened then ended, {refused} refused");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_session_outlives_a_concurrent_revocation_on_sqlite() {
    no_session_outlives_a_concurrent_revocation(Kms::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_session_outlives_a_concurrent_revocation_on_postgres() {
    let url = TestCluster::shared().fresh_database().await;
    let shared = tempfile::tempdir().unwrap();
    let key = shared.path().join("root.key");
    let kms = Kms::start_with(replica(&url, &key, None)).await;
    no_session_outlives_a_concurrent_revocation(kms).await;
}
