//! Who may call what (docs/api.md "Rights"), and clean answers to malformed requests.

use http::{Method, StatusCode};
use serde_json::{json, Value};

use super::{Kms, SA_TOKEN};

/// The callers of the matrix, in column order.
struct Callers {
    admin: String,
    member: String,
    gateway: String,
}

async fn world() -> (Kms, Callers, String) {
    let kms = Kms::start().await;
    let gateway = kms.gateway("gw").await;
    kms.resource("prod", "gw").await;
    let member = kms.user("alice", false).await;
    kms.grant("prod", "alice", 600).await;
    let session = kms.open_session(&member, "prod", 60).await;
    let session = session.expect(StatusCode::CREATED)["session"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let admin = kms.admin.clone();
    (
        kms,
        Callers {
            admin,
            member,
            gateway,
        },
        session,
    )
}

/// One endpoint of the matrix: method, path, body by caller index, and the expected status for
/// no token, admin, member and gateway.
type Row = (Method, String, fn(usize) -> Value, [StatusCode; 4]);

#[tokio::test]
async fn every_endpoint_checks_the_callers_rights() {
    let (kms, who, session) = world().await;
    let (ok, created, no_content) = (StatusCode::OK, StatusCode::CREATED, StatusCode::NO_CONTENT);
    let (unauth, forbidden, not_found) = (
        StatusCode::UNAUTHORIZED,
        StatusCode::FORBIDDEN,
        StatusCode::NOT_FOUND,
    );
    let s = session.as_str();
    // (method, path, body for admin/member/gateway, [none, admin, member, gateway])
    let rows: Vec<Row> = vec![
        (
            Method::GET,
            "/v1/whoami".into(),
            |_| Value::Null,
            [unauth, ok, ok, ok],
        ),
        (
            Method::GET,
            "/v1/users".into(),
            |_| Value::Null,
            [unauth, ok, forbidden, forbidden],
        ),
        (
            Method::POST,
            "/v1/users".into(),
            |i| json!({"name": format!("u{i}")}),
            [unauth, created, forbidden, forbidden],
        ),
        (
            Method::GET,
            "/v1/gateways".into(),
            |_| Value::Null,
            [unauth, ok, ok, forbidden],
        ),
        (
            Method::POST,
            "/v1/gateways".into(),
            |i| json!({"name": format!("g{i}")}),
            [unauth, created, forbidden, forbidden],
        ),
        (
            Method::GET,
            "/v1/resources".into(),
            |_| Value::Null,
            [unauth, ok, ok, forbidden],
        ),
        (
            Method::GET,
            "/v1/resources/prod".into(),
            |_| Value::Null,
            [unauth, ok, ok, forbidden],
        ),
        (
            Method::POST,
            "/v1/resources".into(),
            |i| {
                json!({"kind": "kubernetes", "name": format!("r{i}"), "gateway": "gw",
                       "url": "https://k8s.example:6443"})
            },
            [unauth, created, forbidden, forbidden],
        ),
        (
            Method::POST,
            "/v1/resources/prod/accounts".into(),
            |i| json!({"name": format!("a{i}"), "token": "t"}),
            [unauth, created, forbidden, forbidden],
        ),
        (
            Method::GET,
            "/v1/accounts".into(),
            |_| Value::Null,
            [unauth, ok, ok, forbidden],
        ),
        (
            Method::GET,
            "/v1/grants".into(),
            |_| Value::Null,
            [unauth, ok, forbidden, forbidden],
        ),
        (
            Method::POST,
            "/v1/grants".into(),
            |_| json!({"resource": "prod", "account": "admin", "user": "nobody"}),
            [unauth, not_found, forbidden, forbidden],
        ),
        (
            Method::DELETE,
            "/v1/grants/none".into(),
            |_| Value::Null,
            [unauth, not_found, forbidden, forbidden],
        ),
        (
            Method::DELETE,
            "/v1/resources/none".into(),
            |_| Value::Null,
            [unauth, not_found, forbidden, forbidden],
        ),
        (
            Method::DELETE,
            "/v1/resources/prod/accounts/none".into(),
            |_| Value::Null,
            [unauth, not_found, forbidden, forbidden],
        ),
        (
            Method::GET,
            "/v1/sessions".into(),
            |_| Value::Null,
            [unauth, ok, ok, forbidden],
        ),
        (
            Method::GET,
            format!("/v1/sessions/{s}"),
            |_| Value::Null,
            [unauth, ok, ok, forbidden],
        ),
        (
            Method::POST,
            "/v1/sessions/none/terminate".into(),
            |_| Value::Null,
            [unauth, not_found, forbidden, forbidden],
        ),
        (
            Method::POST,
            "/v1/gateway/heartbeat".into(),
            |_| json!({"address": "127.0.0.1:8443"}),
            [unauth, forbidden, forbidden, ok],
        ),
        (
            Method::GET,
            format!("/v1/gateway/sessions/{s}"),
            |_| Value::Null,
            [unauth, forbidden, forbidden, ok],
        ),
        (
            Method::GET,
            "/v1/gateway/changes?after=0".into(),
            |_| Value::Null,
            [unauth, forbidden, forbidden, ok],
        ),
        (
            Method::POST,
            format!("/v1/sessions/{s}/end"),
            |_| Value::Null,
            [unauth, ok, ok, forbidden],
        ),
        (
            Method::DELETE,
            "/v1/resources/r1".into(),
            |_| Value::Null,
            [unauth, no_content, forbidden, forbidden],
        ),
    ];
    let tokens = [
        None,
        Some(&who.admin),
        Some(&who.member),
        Some(&who.gateway),
    ];
    for (method, path, body, expected) in rows {
        for (i, (token, status)) in tokens.iter().zip(expected).enumerate() {
            let reply = kms
                .call(method.clone(), &path, token.map(String::as_str), body(i))
                .await;
            assert_eq!(
                reply.status, status,
                "{method} {path} as caller {i}: {}",
                reply.json
            );
            if !status.is_success() {
                assert!(
                    !reply.code().is_empty(),
                    "{method} {path}: error without a code"
                );
            }
        }
    }
    let bogus = kms.get("/v1/whoami", "kmsu_not-a-real-token").await;
    assert_eq!((bogus.status, bogus.code()), (unauth, "unauthenticated"));
    let foreign = kms.get("/v1/whoami", "Bearer-ish").await;
    assert_eq!(foreign.status, unauth);
    kms.assert_never_leaked(SA_TOKEN);
}

#[tokio::test]
async fn members_see_only_their_own_sessions_and_granted_accounts() {
    let (kms, who, session) = world().await;
    let bob = kms.user("bob", false).await;
    for path in [
        format!("/v1/sessions/{session}"),
        format!("/v1/sessions/{session}/end"),
    ] {
        let method = if path.ends_with("/end") {
            Method::POST
        } else {
            Method::GET
        };
        let reply = kms.call(method, &path, Some(&bob), Value::Null).await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::NOT_FOUND, "not_found"),
            "{path}"
        );
    }
    let bobs = kms.get("/v1/sessions", &bob).await.expect(StatusCode::OK);
    assert_eq!(bobs, json!([]));
    let snooping = kms
        .get("/v1/sessions?user=alice", &bob)
        .await
        .expect(StatusCode::OK);
    assert_eq!(snooping, json!([]));
    let alices = kms
        .get("/v1/sessions", &who.member)
        .await
        .expect(StatusCode::OK);
    assert_eq!(alices.as_array().unwrap().len(), 1);
    let all = kms
        .get("/v1/sessions?user=alice&active=true", &who.admin)
        .await;
    assert_eq!(all.expect(StatusCode::OK)[0]["id"], session.as_str());
    assert_eq!(
        kms.get("/v1/accounts", &bob).await.expect(StatusCode::OK),
        json!([])
    );
    let granted = kms.get("/v1/accounts?resource=prod", &who.member).await;
    assert_eq!(granted.expect(StatusCode::OK)[0]["name"], "admin");
    let ended = kms
        .post(
            &format!("/v1/sessions/{session}/end"),
            &who.member,
            Value::Null,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        (ended["status"].as_str(), ended["end_cause"].as_str()),
        (Some("ended"), Some("user"))
    );
    kms.assert_never_leaked(SA_TOKEN);
}

#[tokio::test]
async fn gateways_see_only_sessions_bound_to_them() {
    let (kms, who, session) = world().await;
    let other = kms.gateway("gw-2").await;
    let path = format!("/v1/gateway/sessions/{session}");
    assert_eq!(kms.get(&path, &other).await.status, StatusCode::NOT_FOUND);
    let credential = kms.get(&format!("{path}/credential"), &other).await;
    assert_eq!(credential.status, StatusCode::FORBIDDEN);
    assert!(!credential.message().is_empty());
    let mine = kms.get(&format!("{path}/credential"), &who.gateway).await;
    let sealed = serde_json::from_value(mine.expect(StatusCode::OK)["sealed_token"].clone());
    let opened = super::gateway_sealing_key("gw").open(&sealed.unwrap(), &session, "gw");
    assert_eq!(opened.unwrap().expose(), SA_TOKEN);
    let unknown = kms
        .get("/v1/gateway/sessions/nope/credential", &who.gateway)
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    kms.assert_never_leaked(SA_TOKEN);
}

#[tokio::test]
async fn malformed_requests_get_clean_json_errors() {
    let kms = Kms::start().await;
    let admin = Some(kms.admin.as_str());
    let json_type = Some("application/json");
    let cases = [
        (
            Method::POST,
            "/v1/users",
            json_type,
            b"{not json".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/v1/users",
            json_type,
            b"{}".to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::POST,
            "/v1/users",
            Some("text/plain"),
            b"{}".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            Method::POST,
            "/v1/users",
            json_type,
            vec![b' '; 2 * 1024 * 1024],
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            Method::GET,
            "/v1/nowhere",
            None,
            Vec::new(),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::PUT,
            "/v1/users",
            None,
            Vec::new(),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Method::GET,
            "/v1/sessions?active=maybe",
            None,
            Vec::new(),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (method, path, content_type, body, status) in cases {
        let reply = kms
            .raw(method.clone(), path, admin, content_type, body)
            .await;
        assert_eq!(reply.status, status, "{method} {path}: {}", reply.json);
        let expected = if status == StatusCode::NOT_FOUND {
            "not_found"
        } else {
            "invalid"
        };
        assert_eq!(reply.code(), expected, "{method} {path}");
        assert!(!reply.message().is_empty(), "{method} {path}");
    }
    let bad_name = kms
        .post("/v1/users", &kms.admin, json!({"name": "a/b"}))
        .await;
    assert_eq!(
        (bad_name.status, bad_name.code()),
        (StatusCode::BAD_REQUEST, "invalid")
    );
    let taken = kms
        .post("/v1/users", &kms.admin, json!({"name": "admin"}))
        .await;
    assert_eq!(
        (taken.status, taken.code()),
        (StatusCode::CONFLICT, "conflict")
    );
}
