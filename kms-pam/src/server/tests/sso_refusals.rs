//! Single sign-on refused: every way a provider's answer or a browser's return can be wrong
//! says why and creates nothing (no user, no cookie); a provider that is down leaves the
//! sessions already open running; providers are validated and their secret never shown.

use http::{Method, StatusCode};
use serde_json::{json, Value};

use super::console::Page;
use super::sso::{
    begin, browse, browse_elsewhere, callback, cli_credential, location, provider, session_of,
    sre_member, text, tokens, user_names, world, Double, Key, CLIENT_ID, CLIENT_SECRET,
};
use super::Kms;

/// Asserts a refused sign-in: `status`, the page says `why`, no cookie, no user `alice`.
async fn refused(kms: &Kms, answer: &Page, status: StatusCode, why: &str) {
    assert_eq!(answer.status, status, "{why}: {}", answer.text);
    assert!(answer.text.contains(why), "{why}: {}", answer.text);
    assert!(
        answer.text.contains("Single sign-on failed"),
        "{}",
        answer.text
    );
    assert!(
        answer.headers.get("set-cookie").is_none(),
        "{why}: a cookie"
    );
    let names = user_names(kms).await;
    assert!(
        !names.contains(&"alice".to_owned()),
        "{why}: created {names:?}"
    );
}

#[tokio::test]
async fn id_tokens_wrong_in_any_way_are_refused_and_create_nothing() {
    let (kms, double, key) = world().await;
    let rogue = Key::new("rogue");
    let impostor = Key::new("k1");
    type Spoil = fn(&mut Value);
    let cases: [(&str, Spoil, Option<&Key>); 7] = [
        (
            "another client (audience)",
            |c| c["aud"] = json!("other-client"),
            None,
        ),
        ("it has expired", |c| c["exp"] = json!(1_000_000), None),
        (
            "another issuer",
            |c| c["iss"] = json!("http://127.0.0.1:1"),
            None,
        ),
        (
            "nonce does not match",
            |c| c["nonce"] = json!("another-nonce"),
            None,
        ),
        ("nonce does not match", |c| c["nonce"] = Value::Null, None),
        ("does not publish", |_| {}, Some(&rogue)),
        ("signature does not verify", |_| {}, Some(&impostor)),
    ];
    for (why, spoil, signer) in cases {
        let query = begin(&kms, "/login/sso/corp").await;
        let mut claims = double.claims(Some(&query["nonce"]), &["sre"]);
        spoil(&mut claims);
        let id_token = signer.unwrap_or(&key).sign(&claims);
        double.answer(200, tokens(&id_token, "provider-refresh-1"));
        let answer = callback(&kms, "code-1", &query["state"]).await;
        refused(&kms, &answer, StatusCode::BAD_REQUEST, why).await;
        // The state is spent either way: the replay reaches no token endpoint.
        let again = callback(&kms, "code-1", &query["state"]).await;
        refused(&kms, &again, StatusCode::BAD_REQUEST, "already finished").await;
    }
    // One code exchanged per case, none for the replays.
    assert_eq!(double.received("/token").len(), cases.len());
}

#[tokio::test]
async fn an_unknown_or_replayed_state_is_refused() {
    let (kms, double, key) = world().await;
    let query = begin(&kms, "/login/sso/corp").await;
    let claims = double.claims(Some(&query["nonce"]), &["sre"]);
    double.answer(200, tokens(&key.sign(&claims), "provider-refresh-1"));
    let unknown = callback(&kms, "code-1", "not-a-state-kms-issued").await;
    refused(
        &kms,
        &unknown,
        StatusCode::BAD_REQUEST,
        "unknown, expired or already finished",
    )
    .await;
    let without = browse(&kms, "/login/sso/callback?code=code-1").await;
    refused(
        &kms,
        &without,
        StatusCode::BAD_REQUEST,
        "lacks a code or a state",
    )
    .await;
    assert!(double.received("/token").is_empty(), "no code exchanged");

    let signed_in = callback(&kms, "code-1", &query["state"]).await;
    assert_eq!(signed_in.status, StatusCode::OK, "{}", signed_in.text);
    let users = user_names(&kms).await;
    double.answer(200, tokens(&key.sign(&claims), "provider-refresh-2"));
    let replayed = callback(&kms, "code-1", &query["state"]).await;
    assert_eq!(replayed.status, StatusCode::BAD_REQUEST);
    assert!(
        replayed.text.contains("already finished"),
        "{}",
        replayed.text
    );
    assert!(replayed.headers.get("set-cookie").is_none());
    assert_eq!(user_names(&kms).await, users);
    assert_eq!(double.received("/token").len(), 1);
}

/// Login CSRF: a callback link made by a sign-in someone began in their own browser, opened in
/// another browser, signs nobody in; the state is spent with it.
#[tokio::test]
async fn a_sign_in_is_finished_only_by_the_browser_that_began_it() {
    let (kms, double, key) = world().await;
    let started = browse(&kms, "/login/sso/corp").await;
    let cookie = started.headers["set-cookie"].to_str().unwrap().to_owned();
    for part in ["kms_sso=", "HttpOnly", "SameSite=Lax", "Path=/login/sso"] {
        assert!(cookie.contains(part), "{cookie}");
    }
    let query = location(&started).1;
    let claims = double.claims(Some(&query["nonce"]), &["sre"]);
    double.answer(200, tokens(&key.sign(&claims), "provider-refresh-1"));
    let users = user_names(&kms).await;
    let path = format!("/login/sso/callback?code=code-1&state={}", query["state"]);
    let elsewhere = browse_elsewhere(&kms, &path).await;
    refused(
        &kms,
        &elsewhere,
        StatusCode::BAD_REQUEST,
        "started in another browser",
    )
    .await;
    assert!(double.received("/token").is_empty(), "no code exchanged");
    assert_eq!(user_names(&kms).await, users);
    // The state went with it: the right browser cannot finish it afterwards either.
    let late = browse(&kms, &path).await;
    assert!(late.text.contains("already finished"), "{}", late.text);
}

#[tokio::test]
async fn the_providers_refusal_spends_the_state_without_exchanging_anything() {
    let (kms, double, key) = world().await;
    let query = begin(&kms, "/login/sso/corp").await;
    // Whatever the token endpoint would answer, KMS must not ask it.
    let claims = double.claims(Some(&query["nonce"]), &["sre"]);
    double.answer(200, tokens(&key.sign(&claims), "provider-refresh-1"));
    let path = format!(
        "/login/sso/callback?error=access_denied&error_description=cancelled&state={}",
        query["state"]
    );
    let answer = browse(&kms, &path).await;
    refused(&kms, &answer, StatusCode::BAD_REQUEST, "access_denied").await;
    assert!(answer.text.contains("cancelled"), "{}", answer.text);
    assert!(
        double.received("/token").is_empty(),
        "a refused sign-in exchanged a code"
    );
    let later = callback(&kms, "code-1", &query["state"]).await;
    refused(&kms, &later, StatusCode::BAD_REQUEST, "already finished").await;
}

#[tokio::test]
async fn a_provider_that_is_down_refuses_sign_ins_and_sessions_continue() {
    let (kms, double, key) = world().await;
    let credential = cli_credential(&kms, &double, &key, &["sre"]).await;
    let access = text(&credential["access_token"]);
    let session = session_of(&kms, "alice", &access).await;
    let id = text(&session["id"]);
    // A sign-in begun before the outage, and a second provider never reached.
    let query = begin(&kms, "/login/sso/corp").await;
    let gone = Double::start(&[&key]).await;
    provider(&kms, &gone, "gone", json!([])).await;
    let users = user_names(&kms).await;
    gone.stop();
    double.stop();

    let start = browse(&kms, "/login/sso/gone").await;
    assert_eq!(start.status, StatusCode::BAD_GATEWAY, "{}", start.text);
    assert!(start.text.contains("unreachable"), "{}", start.text);
    let finish = callback(&kms, "code-1", &query["state"]).await;
    assert_eq!(finish.status, StatusCode::BAD_GATEWAY, "{}", finish.text);
    assert!(finish.text.contains("unreachable"), "{}", finish.text);
    assert!(finish.headers.get("set-cookie").is_none());
    let body = json!({ "refresh_token": credential["refresh_token"] });
    let refresh = kms.call(Method::POST, "/v1/sso/refresh", None, body).await;
    assert_eq!(
        refresh.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        refresh.json
    );
    assert!(
        refresh.message().contains("unreachable"),
        "{}",
        refresh.message()
    );
    let device = json!({"provider": "gone"});
    let device = kms.call(Method::POST, "/v1/sso/device", None, device).await;
    assert_eq!(
        device.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        device.json
    );
    assert_eq!(user_names(&kms).await, users);

    // What was open before stays open: the session, and the credential until it expires.
    let shown = kms.get(&format!("/v1/sessions/{id}"), &kms.admin).await;
    assert_eq!(shown.expect(StatusCode::OK)["status"], "active");
    kms.get("/v1/whoami", &access).await.expect(StatusCode::OK);
    let own = kms.get(&format!("/v1/sessions/{id}"), &access).await;
    assert_eq!(own.expect(StatusCode::OK)["status"], "active");
}

#[tokio::test]
async fn an_unknown_provider_is_named_in_the_refusal() {
    let (kms, double, _) = world().await;
    let start = browse(&kms, "/login/sso/nope").await;
    refused(
        &kms,
        &start,
        StatusCode::BAD_REQUEST,
        "no single sign-on provider is named",
    )
    .await;
    let body = json!({"provider": "nope"});
    let device = kms.call(Method::POST, "/v1/sso/device", None, body).await;
    assert_eq!(device.status, StatusCode::BAD_REQUEST, "{}", device.json);
    assert!(device.message().contains("nope"), "{}", device.message());
    // A CLI sign-in needs both its port and a well-formed challenge.
    for query in [
        "cli_port=4000",
        "cli_port=4000&cli_challenge=short",
        "cli_challenge=x",
    ] {
        let answer = browse(&kms, &format!("/login/sso/corp?{query}")).await;
        refused(&kms, &answer, StatusCode::BAD_REQUEST, "cli_challenge").await;
    }
    assert!(double.received("/token").is_empty());
}

#[tokio::test]
async fn providers_are_validated_and_their_secret_never_shown() {
    let kms = Kms::start().await;
    let double = Double::start(&[&Key::new("k1")]).await;
    let issuer = double.issuer.as_str();
    let body = |issuer: &str, extra: Value| {
        let mut body = json!({"name": "corp", "issuer": issuer, "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET});
        for (field, value) in extra.as_object().unwrap() {
            body[field] = value.clone();
        }
        body
    };
    let unknown_project = json!({"group": "sre",
        "target": {"kind": "project", "project": "nowhere", "role": "member"}});
    for (issuer, extra, why) in [
        ("http://idp.example", json!({}), "must be an https:// URL"),
        ("https://idp.example?x=1", json!({}), "without query"),
        (
            issuer,
            json!({"scopes": ["email", "groups"]}),
            "must include openid",
        ),
        (
            issuer,
            json!({"rules": [unknown_project]}),
            "project nowhere does not exist",
        ),
        (
            issuer,
            json!({"credential_ttl_secs": 5}),
            "credential_ttl_secs",
        ),
        (issuer, json!({"client_secret": ""}), "client_secret"),
    ] {
        let answer = kms
            .post("/v1/sso/providers", &kms.admin, body(issuer, extra))
            .await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{why}: {}",
            answer.json
        );
        assert!(
            answer.message().contains(why),
            "{why}: {}",
            answer.message()
        );
    }
    let bob = kms.user("bob", false).await;
    let by_bob = kms
        .post("/v1/sso/providers", &bob, body(issuer, json!({})))
        .await;
    assert_eq!(by_bob.status, StatusCode::FORBIDDEN, "{}", by_bob.json);
    assert_eq!(
        kms.get("/v1/sso/providers", &bob).await.status,
        StatusCode::FORBIDDEN
    );
    let anonymous = kms
        .call(Method::GET, "/v1/sso/providers", None, Value::Null)
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);

    let rules = json!({"rules": [sre_member(), {"group": "ops", "target": {"kind": "org_admin"}}]});
    let created = kms
        .post("/v1/sso/providers", &kms.admin, body(issuer, rules))
        .await;
    let created = created.expect(StatusCode::CREATED);
    assert!(created.get("client_secret").is_none(), "{created}");
    let listed = kms
        .get("/v1/sso/providers", &kms.admin)
        .await
        .expect(StatusCode::OK);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let shown = &listed[0];
    assert!(shown.get("client_secret").is_none(), "{shown}");
    assert_eq!(shown["issuer"], double.issuer.as_str());
    assert_eq!(shown["rules"][1]["target"]["kind"], "org_admin");
    let twice = kms
        .post("/v1/sso/providers", &kms.admin, body(issuer, json!({})))
        .await;
    assert_eq!(twice.status, StatusCode::CONFLICT, "{}", twice.json);
    kms.assert_never_leaked(CLIENT_SECRET);
    // Registering a provider does not reach it yet.
    assert!(double
        .received("/.well-known/openid-configuration")
        .is_empty());
}

/// Two commands refreshing the same login at once: one wins, the other is told the token was
/// used, and the provider is asked once (a provider that rotates refresh tokens would take a
/// second use for a theft and revoke the person's grant). A provider that is down decides
/// nothing: the same refresh token works once it is back.
#[tokio::test]
async fn concurrent_refreshes_ask_the_provider_once_and_a_down_provider_decides_nothing() {
    let (kms, double, key) = world().await;
    let first = cli_credential(&kms, &double, &key, &["sre"]).await;
    let session = session_of(&kms, "alice", &text(&first["access_token"])).await;
    let asked = double.received("/token").len();
    let claims = double.claims(None, &["sre"]);
    double.answer(200, tokens(&key.sign(&claims), "provider-refresh-2"));
    let body = json!({ "refresh_token": first["refresh_token"] });
    let (a, b) = tokio::join!(
        kms.call(Method::POST, "/v1/sso/refresh", None, body.clone()),
        kms.call(Method::POST, "/v1/sso/refresh", None, body.clone()),
    );
    let mut statuses = [a.status.as_u16(), b.status.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 401], "{} / {}", a.json, b.json);
    assert_eq!(
        double.received("/token").len(),
        asked + 1,
        "the provider asked once"
    );
    let won = if a.status == StatusCode::OK { &a } else { &b };
    let path = format!("/v1/sessions/{}", text(&session["id"]));
    let view = kms.get(&path, &kms.admin).await.expect(StatusCode::OK);
    assert_eq!(view["status"], "active", "nobody was signed out: {view}");

    // The provider fails (a 500, no OAuth answer): 503, nothing decided, and the same refresh
    // token works once it answers again.
    double.answer(500, json!({}));
    let body = json!({ "refresh_token": won.json["refresh_token"] });
    let down = kms
        .call(Method::POST, "/v1/sso/refresh", None, body.clone())
        .await;
    assert_eq!(
        down.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        down.json
    );
    double.answer(200, tokens(&key.sign(&claims), "provider-refresh-4"));
    let again = kms.call(Method::POST, "/v1/sso/refresh", None, body).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.json);
}
