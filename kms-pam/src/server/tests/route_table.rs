//! Every route × every kind of caller (docs/api.md "Rights"), over the two projects of
//! `projects.rs`, and a guard that the table keeps up with the router.

use http::{Method, StatusCode};
use serde_json::{json, Value};

use super::projects::{world, World, A};
use super::{gateway_audit_key, gateway_sealing_key, session_body, SA_TOKEN};
use crate::tls::generate_csr;

/// The callers of the table, in column order.
const CALLERS: [&str; 7] = [
    "no token",
    "org admin",
    "project admin",
    "member",
    "auditor",
    "outsider",
    "gateway",
];

/// One route: method, path, body by caller index, expected status by caller.
type Row = (Method, String, fn(usize) -> Value, [u16; 7]);

fn none(_: usize) -> Value {
    Value::Null
}

/// Every route of the router (`router.rs`) and the console's link route, with what each kind
/// of caller is answered; `s` is member alice's session (with one recorded stream).
fn table(s: &str) -> Vec<Row> {
    // (method, path, body, [none, org admin, project admin, member, auditor, outsider, gateway])
    vec![
        (Method::GET, "/v1/healthz".into(), none, [200; 7]),
        (
            Method::GET,
            "/v1/whoami".into(),
            none,
            [401, 200, 200, 200, 200, 200, 200],
        ),
        // The organisation: users, gateways, projects.
        (
            Method::GET,
            "/v1/users".into(),
            none,
            [401, 200, 403, 403, 403, 403, 403],
        ),
        (
            Method::POST,
            "/v1/users".into(),
            |i| json!({"name": format!("u{i}")}),
            [401, 201, 403, 403, 403, 403, 403],
        ),
        (
            Method::POST,
            "/v1/users/nobody/disable".into(),
            none,
            [401, 404, 403, 403, 403, 403, 403],
        ),
        (
            Method::POST,
            "/v1/users/nobody/enable".into(),
            none,
            [401, 404, 403, 403, 403, 403, 403],
        ),
        (
            Method::POST,
            "/v1/users/nobody/token".into(),
            none,
            [401, 404, 403, 403, 403, 403, 403],
        ),
        (
            Method::DELETE,
            "/v1/users/nobody".into(),
            none,
            [401, 404, 403, 403, 403, 403, 403],
        ),
        (
            Method::GET,
            "/v1/gateways".into(),
            none,
            [401, 200, 200, 200, 200, 200, 403],
        ),
        (
            Method::POST,
            "/v1/gateways".into(),
            |i| json!({"name": format!("g{i}")}),
            [401, 201, 403, 403, 403, 403, 403],
        ),
        (
            Method::POST,
            "/v1/gateways/nogw/revoke".into(),
            none,
            [401, 404, 403, 403, 403, 403, 403],
        ),
        (
            Method::GET,
            "/v1/gateways/gw".into(),
            none,
            [401, 200, 200, 200, 200, 200, 403],
        ),
        (
            Method::PATCH,
            "/v1/gateways/nogw".into(),
            |_| json!({"allowed_url_hosts": []}),
            [401, 404, 403, 403, 403, 403, 403],
        ),
        (
            Method::POST,
            "/v1/gateways/nogw/projects".into(),
            |_| json!({"project": "team-a"}),
            [401, 404, 403, 403, 403, 403, 403],
        ),
        (
            Method::DELETE,
            "/v1/gateways/nogw/projects/team-a".into(),
            none,
            [401, 404, 403, 403, 403, 403, 403],
        ),
        (
            Method::POST,
            "/v1/projects".into(),
            |i| json!({"name": format!("p{i}")}),
            [401, 201, 403, 403, 403, 403, 403],
        ),
        (
            Method::GET,
            "/v1/projects".into(),
            none,
            [401, 200, 200, 200, 200, 200, 403],
        ),
        (
            Method::GET,
            A.into(),
            none,
            [401, 200, 200, 200, 200, 404, 403],
        ),
        (
            Method::DELETE,
            "/v1/projects/none".into(),
            none,
            [401, 404, 403, 403, 403, 403, 403],
        ),
        // Members.
        (
            Method::GET,
            format!("{A}/members"),
            none,
            [401, 200, 200, 403, 200, 404, 403],
        ),
        (
            Method::PUT,
            format!("{A}/members/nobody"),
            |_| json!({"role": "member"}),
            [401, 404, 404, 403, 403, 404, 403],
        ),
        (
            Method::DELETE,
            format!("{A}/members/nobody"),
            none,
            [401, 404, 404, 403, 403, 404, 403],
        ),
        // Resources and accounts.
        (
            Method::GET,
            format!("{A}/resources"),
            none,
            [401, 200, 200, 200, 200, 404, 403],
        ),
        (
            Method::GET,
            format!("{A}/resources/prod"),
            none,
            [401, 200, 200, 200, 200, 404, 403],
        ),
        (
            Method::POST,
            format!("{A}/resources"),
            |i| {
                json!({"kind": "kubernetes", "name": format!("r{i}"), "gateway": "gw",
                   "url": "https://k8s.example:6443"})
            },
            [401, 201, 201, 403, 403, 404, 403],
        ),
        (
            Method::DELETE,
            format!("{A}/resources/none"),
            none,
            [401, 404, 404, 403, 403, 404, 403],
        ),
        (
            Method::PATCH,
            format!("{A}/resources/prod"),
            |_| json!({"ssl_verify": true}),
            [401, 200, 200, 403, 403, 404, 403],
        ),
        (
            Method::POST,
            format!("{A}/resources/prod/accounts"),
            |i| json!({"name": format!("a{i}"), "token": "t"}),
            [401, 201, 201, 403, 403, 404, 403],
        ),
        (
            Method::DELETE,
            format!("{A}/resources/prod/accounts/none"),
            none,
            [401, 404, 404, 403, 403, 404, 403],
        ),
        (
            Method::PATCH,
            format!("{A}/resources/prod/accounts/admin"),
            |i| json!({"description": format!("edited by caller {i}")}),
            [401, 200, 200, 403, 403, 404, 403],
        ),
        (
            Method::GET,
            format!("{A}/accounts"),
            none,
            [401, 200, 200, 200, 200, 404, 403],
        ),
        // Grants.
        (
            Method::GET,
            format!("{A}/grants"),
            none,
            [401, 200, 200, 403, 200, 404, 403],
        ),
        (
            Method::POST,
            format!("{A}/grants"),
            |_| json!({"resource": "prod", "account": "admin", "user": "nobody"}),
            [401, 404, 404, 403, 403, 404, 403],
        ),
        (
            Method::DELETE,
            format!("{A}/grants/none"),
            none,
            [401, 404, 404, 403, 403, 404, 403],
        ),
        (
            Method::POST,
            format!("{A}/grants/none/revoke"),
            |_| json!({"reason": "left the team"}),
            [401, 404, 404, 403, 403, 404, 403],
        ),
        // Sessions: admins need no grant, members use theirs, auditors open none.
        (
            Method::POST,
            format!("{A}/sessions"),
            |_| session_body("prod", 60),
            [401, 201, 201, 201, 403, 404, 403],
        ),
        (
            Method::GET,
            format!("{A}/sessions"),
            none,
            [401, 200, 200, 200, 200, 404, 403],
        ),
        (
            Method::GET,
            format!("{A}/sessions/{s}"),
            none,
            [401, 200, 200, 200, 200, 404, 403],
        ),
        (
            Method::GET,
            format!("{A}/sessions/{s}/verify"),
            none,
            [401, 200, 200, 200, 200, 404, 403],
        ),
        (
            Method::GET,
            format!("{A}/sessions/{s}/recordings/1"),
            none,
            [401, 200, 200, 200, 200, 404, 403],
        ),
        (
            Method::GET,
            format!("{A}/sessions/{s}/export"),
            none,
            [401, 200, 200, 200, 200, 404, 403],
        ),
        (
            Method::POST,
            format!("{A}/sessions/none/terminate"),
            none,
            [401, 404, 404, 403, 403, 404, 403],
        ),
        // Gateways' own routes.
        (
            Method::POST,
            "/v1/gateway/heartbeat".into(),
            |_| json!({"address": "127.0.0.1:8443"}),
            [401, 403, 403, 403, 403, 403, 200],
        ),
        (
            Method::GET,
            format!("/v1/gateway/sessions/{s}"),
            none,
            [401, 403, 403, 403, 403, 403, 200],
        ),
        (
            Method::GET,
            "/v1/gateway/changes?after=0".into(),
            none,
            [401, 403, 403, 403, 403, 403, 200],
        ),
        (
            Method::GET,
            format!("/v1/gateway/sessions/{s}/credential"),
            none,
            [401, 403, 403, 403, 403, 403, 200],
        ),
        (
            Method::POST,
            "/v1/gateway/audit-key".into(),
            |_| json!({"public_key": gateway_audit_key("gw").public_key()}),
            [401, 403, 403, 403, 403, 403, 200],
        ),
        (
            Method::POST,
            "/v1/gateway/sealing-key".into(),
            |_| json!({"public_key": gateway_sealing_key("gw").public_key()}),
            [401, 403, 403, 403, 403, 403, 200],
        ),
        (
            Method::POST,
            "/v1/gateway/certificate".into(),
            |_| json!({"csr": generate_csr("gw").unwrap().1}),
            [401, 403, 403, 403, 403, 403, 200],
        ),
        (
            Method::POST,
            "/v1/gateway/events".into(),
            |_| json!({"events": []}),
            [401, 403, 403, 403, 403, 403, 200],
        ),
        // Relays' certificates, the organisation's audit keys, sign-in links for the console,
        // enrollment, metrics.
        (
            Method::POST,
            "/v1/relays/certificate".into(),
            |_| {
                json!({"name": "edge", "names": ["relay.example.com"],
                       "csr": generate_csr("edge").unwrap().1})
            },
            [401, 200, 403, 403, 403, 403, 403],
        ),
        (
            Method::GET,
            "/v1/audit/keys".into(),
            none,
            [401, 200, 200, 200, 200, 200, 403],
        ),
        (
            Method::POST,
            "/v1/console/links".into(),
            none,
            [401, 201, 201, 201, 201, 201, 403],
        ),
        (
            Method::POST,
            "/v1/gateways/enroll".into(),
            |_| {
                json!({"name": "gw", "enrollment_token": "kmse_spent-or-wrong", "csr": "-",
                   "address": "127.0.0.1:8443"})
            },
            [401; 7],
        ),
        // Single sign-on: organisation admins manage providers; the sign-in calls take no
        // token (a code, handle or refresh token is the credential) and refuse unknown ones.
        (
            Method::GET,
            "/v1/sso/providers".into(),
            none,
            [401, 200, 403, 403, 403, 403, 403],
        ),
        (
            Method::POST,
            "/v1/sso/providers".into(),
            |i| {
                json!({"name": format!("p{i}"), "issuer": "http://203.0.113.7",
                    "client_id": "kms", "client_secret": "s"})
            },
            [401, 400, 403, 403, 403, 403, 403],
        ),
        (
            Method::DELETE,
            "/v1/sso/providers/nobody".into(),
            none,
            [401, 404, 403, 403, 403, 403, 403],
        ),
        (
            Method::GET,
            "/v1/sso/providers/names".into(),
            none,
            [200; 7],
        ),
        (
            Method::POST,
            "/v1/sso/exchange".into(),
            |_| json!({"code": "unknown", "verifier": "v"}),
            [401; 7],
        ),
        (
            Method::POST,
            "/v1/sso/device".into(),
            |_| json!({"provider": "nobody"}),
            [400; 7],
        ),
        (
            Method::POST,
            "/v1/sso/device/poll".into(),
            |_| json!({"handle": "unknown"}),
            [401; 7],
        ),
        (
            Method::POST,
            "/v1/sso/refresh".into(),
            |_| json!({"refresh_token": "kmsr_unknown"}),
            [401; 7],
        ),
        (Method::GET, "/metrics".into(), none, [200; 7]),
        (Method::GET, "/healthz".into(), none, [200; 7]),
        (Method::GET, "/readyz".into(), none, [200; 7]),
        // Last, as it ends the session: its owner and project admins end it, auditors cannot.
        (
            Method::POST,
            format!("{A}/sessions/{s}/end"),
            none,
            [401, 200, 200, 200, 403, 404, 403],
        ),
    ]
}

#[tokio::test]
async fn every_route_checks_the_callers_role_in_the_project_it_touches() {
    let World {
        kms,
        tokens,
        session: s,
    } = world().await;
    for (method, path, body, expected) in table(&s) {
        for (i, (token, status)) in tokens.iter().zip(expected).enumerate() {
            let reply = kms
                .call(method.clone(), &path, token.as_deref(), body(i))
                .await;
            assert_eq!(
                reply.status.as_u16(),
                status,
                "{method} {path} as {}: {}",
                CALLERS[i],
                reply.json
            );
            if !reply.status.is_success() {
                assert!(
                    !reply.code().is_empty(),
                    "{method} {path}: error without a code"
                );
            }
        }
    }
    // A project administrator ends somebody else's active session.
    let (pat, alice) = (tokens[2].as_deref().unwrap(), tokens[3].as_deref().unwrap());
    let other = kms.session_id(A, alice, "prod").await;
    let path = format!("{A}/sessions/{other}/terminate");
    let ended = kms
        .post(&path, pat, Value::Null)
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        (ended["status"].as_str(), ended["end_cause"].as_str()),
        (Some("terminated"), Some("termination"))
    );
    kms.assert_never_leaked(SA_TOKEN);
}

/// The routes `router.rs` mounts, as (method, path template), read from its source, and the
/// console's one API route. The project routes are listed under `/v1/projects/{project}`; their
/// mount under `/v1` for the project `default` runs the same handlers.
fn mounted_routes() -> Vec<(String, String)> {
    let source = include_str!("../router.rs");
    let mut routes = Vec::new();
    for chunk in source.split(".route(").skip(1) {
        let chunk = chunk.split(';').next().unwrap_or(chunk);
        let chunk = chunk.split("\n}").next().unwrap_or(chunk).trim_start();
        let (path, handlers) = if let Some(rest) = chunk.strip_prefix("&at(\"") {
            let end = rest.find('"').unwrap();
            (
                format!("/v1/projects/{{project}}{}", &rest[..end]),
                &rest[end..],
            )
        } else if let Some(rest) = chunk.strip_prefix('"') {
            let end = rest.find('"').unwrap();
            (rest[..end].to_owned(), &rest[end..])
        } else {
            panic!("a route of router.rs this test cannot read: {chunk}");
        };
        for method in ["get", "post", "put", "patch", "delete"] {
            for (at, _) in handlers.match_indices(&format!("{method}(")) {
                let before = handlers[..at].chars().last();
                if before.is_none_or(|c| !(c.is_alphanumeric() || c == '_')) {
                    routes.push((method.to_uppercase(), path.clone()));
                }
            }
        }
    }
    routes.push(("POST".to_owned(), "/v1/console/links".to_owned()));
    routes
}

/// The template of `mounted` that `path` matches, the most specific one if several do.
fn template_of<'a>(path: &str, mounted: &'a [(String, String)]) -> Option<&'a str> {
    let path: Vec<&str> = path.split('?').next().unwrap_or(path).split('/').collect();
    mounted
        .iter()
        .map(|(_, template)| template.as_str())
        .filter(|template| {
            let parts: Vec<&str> = template.split('/').collect();
            parts.len() == path.len()
                && parts
                    .iter()
                    .zip(&path)
                    .all(|(t, p)| t.starts_with('{') || t == p)
        })
        .max_by_key(|template| template.split('/').filter(|t| !t.starts_with('{')).count())
}

/// The table above has a row for each method of each route the router mounts: a route added
/// without its row fails here.
#[test]
fn the_route_table_covers_every_route_of_the_router() {
    let mounted = mounted_routes();
    assert!(mounted.len() > 40, "router.rs read as {mounted:?}");
    let covered: Vec<(String, String)> = table("S")
        .iter()
        .filter_map(|(method, path, _, _)| {
            template_of(path, &mounted).map(|t| (method.to_string(), t.to_owned()))
        })
        .collect();
    let missing: Vec<&(String, String)> = mounted.iter().filter(|r| !covered.contains(r)).collect();
    assert!(missing.is_empty(), "routes without a row: {missing:#?}");
}
