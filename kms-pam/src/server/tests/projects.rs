//! Projects and roles: two projects kept apart, members and auditors, projects' life. The
//! route × role table over the world built here is `route_table.rs`.

use http::{Method, StatusCode};
use serde_json::{json, Value};

use std::sync::Arc;

use super::events::upload;
use super::{gateway_audit_key, Kms};
use crate::audit::{
    AuditEvent, AuditEventKind, AuditSink, ChainingSink, MemoryAuditSink, StreamDetails,
};
use crate::kube::StreamKind;
use crate::session::SessionId;

pub(super) const A: &str = "/v1/projects/team-a";

/// Two projects; in `team-a` a resource `prod`, an admin, a member granted `prod/admin` with an
/// open session, an auditor; `olga` belongs to `team-b` only.
pub(super) struct World {
    pub(super) kms: Kms,
    pub(super) tokens: [Option<String>; 7],
    pub(super) session: String,
}

pub(super) async fn world() -> World {
    let kms = Kms::start().await;
    let gateway = kms.gateway("gw").await;
    kms.project("team-a").await;
    kms.project("team-b").await;
    let mut users = Vec::new();
    for (name, project, role) in [
        ("pat", "team-a", "admin"),
        ("alice", "team-a", "member"),
        ("audrey", "team-a", "auditor"),
        ("olga", "team-b", "member"),
    ] {
        let token = kms.user(name, false).await;
        kms.member(project, name, role).await;
        users.push(token);
    }
    kms.resource_at(A, "prod", "gw").await;
    kms.grant_at(A, "prod", "alice", 600).await;
    let session = kms.session_id(A, &users[1], "prod").await;
    upload(&kms, &gateway, &recorded_exec(&session))
        .await
        .expect(StatusCode::OK);
    let [pat, alice, audrey, olga] = <[String; 4]>::try_from(users).unwrap();
    let tokens = [
        None,
        Some(kms.admin.clone()),
        Some(pat),
        Some(alice),
        Some(audrey),
        Some(olga),
        Some(gateway),
    ];
    World {
        kms,
        tokens,
        session,
    }
}

/// `kubectl exec -- sh` as gateway `gw` records it: one recorded stream.
fn recorded_exec(session: &str) -> Vec<AuditEvent> {
    let chained =
        ChainingSink::new(MemoryAuditSink::new()).with_signer(Arc::new(gateway_audit_key("gw")));
    let details = StreamDetails {
        request_id: 1,
        stream: StreamKind::Exec,
        command: vec!["sh".into()],
        container: None,
        tty: false,
        stdin: false,
        ports: Vec::new(),
        protocol: None,
        recorded: true,
    };
    let kind = AuditEventKind::StreamDetails(Box::new(details));
    chained
        .record(AuditEvent::now(SessionId::new(session), kind))
        .unwrap();
    chained.inner().events()
}

#[tokio::test]
async fn a_project_admin_of_one_project_can_neither_see_nor_change_the_other() {
    let World {
        kms,
        tokens,
        session,
    } = world().await;
    let (pat, olga) = (tokens[2].clone().unwrap(), tokens[5].clone().unwrap());
    kms.member("team-b", "olga", "admin").await;
    kms.resource_at("/v1/projects/team-b", "staging", "gw")
        .await;
    // pat (admin of team-a) and team-b.
    let listed = kms.get("/v1/projects", &pat).await.expect(StatusCode::OK);
    let listed: Vec<(Value, Value)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].clone(), p["role"].clone()))
        .collect();
    assert_eq!(
        listed,
        vec![
            (json!("default"), json!("member")),
            (json!("team-a"), json!("admin"))
        ],
        "new users join default as members; team-b is not listed"
    );
    for path in [
        "/v1/projects/team-b",
        "/v1/projects/team-b/resources",
        "/v1/projects/team-b/sessions",
        "/v1/projects/team-b/members",
    ] {
        let reply = kms.get(path, &pat).await;
        assert_eq!(
            (reply.status, reply.message()),
            (StatusCode::NOT_FOUND, "project team-b not found"),
            "{path}"
        );
    }
    let unknown = kms.get("/v1/projects/team-z/resources", &pat).await;
    assert_eq!(
        unknown.message(),
        "project team-z not found",
        "same answer as for team-b"
    );
    let delete = kms
        .delete("/v1/projects/team-b/resources/staging", &pat)
        .await;
    assert_eq!(delete.status, StatusCode::NOT_FOUND);
    let add = kms
        .call(
            Method::PUT,
            "/v1/projects/team-b/members/pat",
            Some(&pat),
            json!({"role": "admin"}),
        )
        .await;
    assert_eq!(add.status, StatusCode::NOT_FOUND, "no self-invitation");
    // A session of team-a is not reachable through team-b, even for team-b's admin.
    let through_b = kms
        .get(&format!("/v1/projects/team-b/sessions/{session}"), &olga)
        .await;
    assert_eq!(through_b.status, StatusCode::NOT_FOUND);
    // Nor through the routes of `default`.
    let through_default = kms
        .get(&format!("/v1/sessions/{session}"), &kms.admin)
        .await;
    assert_eq!(through_default.status, StatusCode::NOT_FOUND);
    // Resource names are per project; gateways are the organisation's.
    kms.resource_at("/v1/projects/team-b", "prod", "gw").await;
    let b = kms
        .get("/v1/projects/team-b/resources", &olga)
        .await
        .expect(StatusCode::OK);
    assert_eq!(b.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn members_see_their_own_sessions_and_auditors_every_one() {
    let World {
        kms,
        tokens,
        session,
    } = world().await;
    let (pat, alice, audrey) = (
        tokens[2].clone().unwrap(),
        tokens[3].clone().unwrap(),
        tokens[4].clone().unwrap(),
    );
    let pats = kms.session_id(A, &pat, "prod").await;
    let list = |token: String| {
        let kms = &kms;
        async move {
            let all = kms.get(&format!("{A}/sessions"), &token).await;
            let all = all.expect(StatusCode::OK);
            let mut ids: Vec<String> = all
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["id"].as_str().unwrap().to_owned())
                .collect();
            ids.sort();
            ids
        }
    };
    let mut both = vec![session.clone(), pats.clone()];
    both.sort();
    assert_eq!(list(alice.clone()).await, vec![session.clone()]);
    assert_eq!(list(audrey.clone()).await, both);
    assert_eq!(list(pat.clone()).await, both);
    let hidden = kms.get(&format!("{A}/sessions/{pats}"), &alice).await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND);
    let read = kms.get(&format!("{A}/sessions/{pats}"), &audrey).await;
    assert_eq!(read.expect(StatusCode::OK)["user"], "pat");
    let terminate = kms
        .post(
            &format!("{A}/sessions/{pats}/terminate"),
            &audrey,
            Value::Null,
        )
        .await;
    assert_eq!(terminate.status, StatusCode::FORBIDDEN);
    assert!(
        terminate.message().contains("auditor"),
        "{}",
        terminate.message()
    );
    let grant = kms
        .post(
            &format!("{A}/grants"),
            &audrey,
            json!({"resource": "prod", "account": "admin", "user": "audrey"}),
        )
        .await;
    assert_eq!(grant.status, StatusCode::FORBIDDEN);
    // Members see only the accounts granted to them; auditors all.
    let accounts = kms.get(&format!("{A}/accounts"), &audrey).await;
    assert_eq!(accounts.expect(StatusCode::OK).as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn projects_are_created_listed_and_deleted_when_empty() {
    let kms = Kms::start().await;
    kms.gateway("gw").await;
    kms.project("team-a").await;
    let taken = kms
        .post("/v1/projects", &kms.admin, json!({"name": "team-a"}))
        .await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    let default = kms.delete("/v1/projects/default", &kms.admin).await;
    assert_eq!(default.status, StatusCode::CONFLICT);
    kms.resource_at(A, "prod", "gw").await;
    let busy = kms.delete(A, &kms.admin).await;
    assert_eq!(busy.status, StatusCode::CONFLICT);
    assert!(busy.message().contains("resource"), "{}", busy.message());
    kms.delete(&format!("{A}/resources/prod"), &kms.admin)
        .await
        .expect(StatusCode::NO_CONTENT);
    kms.delete(A, &kms.admin)
        .await
        .expect(StatusCode::NO_CONTENT);
    assert_eq!(kms.get(A, &kms.admin).await.status, StatusCode::NOT_FOUND);
    let names: Vec<Value> = kms
        .get("/v1/projects", &kms.admin)
        .await
        .expect(StatusCode::OK)
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("default")]);
    kms.project("team-a").await; // the name is free again
}
