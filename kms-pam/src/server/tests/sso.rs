//! Single sign-on through the API and the console against an OpenID provider double served here
//! (`sso/double.rs`: discovery, keys, token and device endpoints, ID tokens signed ES256): the
//! console's and the CLI's sign-ins, identities on sessions, key rotation, refresh and the
//! device grant. The refusals are in `sso_refusals.rs`.

mod double;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use http::{Method, StatusCode};
use serde_json::{json, Value};

use super::console::{page, Page};
use super::Kms;
use double::DEVICE_CODE;
pub(super) use double::{tokens, Double, Key, CLIENT_ID, CLIENT_SECRET};

/// The rule giving group `sre` the member role in `default`.
pub(super) fn sre_member() -> Value {
    json!({"group": "sre", "target": {"kind": "project", "project": "default", "role": "member"}})
}

/// Registers provider `name` at `double` with `rules`.
pub(super) async fn provider(kms: &Kms, double: &Double, name: &str, rules: Value) {
    provider_with(kms, double, name, json!({ "rules": rules })).await;
}

/// Registers provider `name` at `double` with the settings `extra` (rules, …).
pub(super) async fn provider_with(kms: &Kms, double: &Double, name: &str, extra: Value) {
    let mut body = json!({"name": name, "issuer": double.issuer, "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET});
    for (field, value) in extra.as_object().unwrap() {
        body[field] = value.clone();
    }
    kms.post("/v1/sso/providers", &kms.admin, body)
        .await
        .expect(StatusCode::CREATED);
}

/// A KMS with provider `corp` (`sre` → member of `default`), a double with key `k1`, and it.
pub(super) async fn world() -> (Kms, Double, Key) {
    let kms = Kms::start().await;
    let key = Key::new("k1");
    let double = Double::start(&[&key]).await;
    provider(&kms, &double, "corp", json!([sre_member()])).await;
    (kms, double, key)
}

/// The sign-in cookie (`kms_sso`) each KMS gave "the browser" of these tests, as a browser keeps
/// it: a sign-in is finished only by the browser that began it.
static BROWSER_COOKIES: std::sync::Mutex<Vec<(std::net::SocketAddr, String)>> =
    std::sync::Mutex::new(Vec::new());

/// `GET path` on the console (no redirect followed), as one browser: with the sign-in cookie
/// KMS set for it earlier, keeping a new one.
pub(super) async fn browse(kms: &Kms, path: &str) -> Page {
    let kept = BROWSER_COOKIES
        .lock()
        .unwrap()
        .iter()
        .find(|(addr, _)| *addr == kms.addr)
        .map(|(_, cookie)| format!("kms_sso={cookie}"));
    let headers: Vec<(&str, &str)> = kept.iter().map(|c| ("cookie", c.as_str())).collect();
    let answer = page(kms, Method::GET, path, None, &headers, None).await;
    for set in answer.headers.get_all("set-cookie") {
        let set = set.to_str().unwrap();
        if let Some(value) = set.strip_prefix("kms_sso=") {
            let value = value.split(';').next().unwrap().to_owned();
            let mut cookies = BROWSER_COOKIES.lock().unwrap();
            cookies.retain(|(addr, _)| *addr != kms.addr);
            cookies.push((kms.addr, value));
        }
    }
    answer
}

/// `GET path` from another browser: no sign-in cookie.
pub(super) async fn browse_elsewhere(kms: &Kms, path: &str) -> Page {
    page(kms, Method::GET, path, None, &[], None).await
}

/// A redirect's Location without its query, and its query.
pub(super) fn location(answer: &Page) -> (String, HashMap<String, String>) {
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text);
    let to = answer.headers["location"].to_str().unwrap();
    let url = url::Url::parse("http://kms.invalid")
        .unwrap()
        .join(to)
        .unwrap();
    let query = url.query_pairs().into_owned().collect();
    (to.split('?').next().unwrap().to_owned(), query)
}

/// Starts a sign-in at `start` (`/login/sso/corp…`): the provider URL's query.
pub(super) async fn begin(kms: &Kms, start: &str) -> HashMap<String, String> {
    location(&browse(kms, start).await).1
}

/// The browser's return to KMS's callback.
pub(super) async fn callback(kms: &Kms, code: &str, state: &str) -> Page {
    browse(
        kms,
        &format!("/login/sso/callback?code={code}&state={state}"),
    )
    .await
}

/// The names of KMS's users.
pub(super) async fn user_names(kms: &Kms) -> Vec<String> {
    let users = kms
        .get("/v1/users", &kms.admin)
        .await
        .expect(StatusCode::OK);
    let names = users.as_array().unwrap().iter();
    names
        .map(|u| u["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The role of `user` in `default`, if a member.
pub(super) async fn role_in_default(kms: &Kms, user: &str) -> Option<String> {
    let path = "/v1/projects/default/members";
    let members = kms.get(path, &kms.admin).await.expect(StatusCode::OK);
    let mut all = members.as_array().unwrap().iter();
    let found = all.find(|m| m["user"] == user)?;
    Some(found["role"].as_str().unwrap().to_owned())
}

/// The S256 challenge of `verifier`.
pub(super) fn s256(verifier: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// A CLI sign-in through the loopback listener on port 45871 with `groups`, as the person
/// `person` makes of the double's (see [`Double::claims_of`]), the key `key` signing: KMS's
/// answer at its callback.
pub(super) async fn cli_callback(
    kms: &Kms,
    double: &Double,
    key: &Key,
    verifier: &str,
    groups: &[&str],
    person: &Value,
) -> Page {
    let start = format!(
        "/login/sso/corp?cli_port=45871&cli_challenge={}",
        s256(verifier)
    );
    let query = begin(kms, &start).await;
    let claims = double.claims_of(Some(&query["nonce"]), groups, person);
    double.answer(200, tokens(&key.sign(&claims), "provider-refresh-1"));
    callback(kms, "code-cli", &query["state"]).await
}

/// A CLI sign-in through the loopback listener on port 45871 with `groups`, the key `key`
/// signing: the one-time code KMS hands the listener.
pub(super) async fn loopback_code(
    kms: &Kms,
    double: &Double,
    key: &Key,
    verifier: &str,
    groups: &[&str],
) -> String {
    let answer = cli_callback(kms, double, key, verifier, groups, &json!({})).await;
    let (to, back) = location(&answer);
    assert_eq!(to, "http://127.0.0.1:45871/callback");
    back["code"].clone()
}

/// A CLI sign-in to its end: the credential.
pub(super) async fn cli_credential(
    kms: &Kms,
    double: &Double,
    key: &Key,
    groups: &[&str],
) -> Value {
    let verifier = "the-cli-verifier-the-cli-verifier-0123456789";
    let code = loopback_code(kms, double, key, verifier, groups).await;
    let body = json!({"code": code, "verifier": verifier});
    let exchanged = kms.call(Method::POST, "/v1/sso/exchange", None, body).await;
    exchanged.expect(StatusCode::OK)
}

/// The text of a JSON string field.
pub(super) fn text(value: &Value) -> String {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not text: {value}"))
        .to_owned()
}

/// A gateway `gw` with resource `prod` in `default`, `user` granted `prod/admin`: a session
/// opened with `token`, its id.
pub(super) async fn session_of(kms: &Kms, user: &str, token: &str) -> Value {
    kms.gateway("gw").await;
    kms.resource("prod", "gw").await;
    kms.grant("prod", user, 600).await;
    let created = kms.open_session(token, "prod", 300).await;
    created.expect(StatusCode::CREATED)["session"].clone()
}

/// Polls the session's status until it is no longer active (five seconds at most): its
/// status and end cause.
pub(super) async fn ended(kms: &Kms, id: &str) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let path = format!("/v1/sessions/{id}");
        let shown = kms.get(&path, &kms.admin).await.expect(StatusCode::OK);
        let status = text(&shown["status"]);
        if status != "active" || Instant::now() > deadline {
            let cause = shown["end_cause"].as_str().unwrap_or("-").to_owned();
            return (status, cause);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_console_signs_a_person_in_with_code_pkce_state_and_nonce() {
    let (kms, double, key) = world().await;
    let names = kms.call(Method::GET, "/v1/sso/providers/names", None, Value::Null);
    assert_eq!(
        names.await.expect(StatusCode::OK)["providers"],
        json!(["corp"])
    );
    let login = browse(&kms, "/login").await;
    assert!(login.text.contains("Sign in with corp"), "{}", login.text);

    let (to, query) = location(&browse(&kms, "/login/sso/corp").await);
    assert_eq!(to, format!("{}/authorize", double.issuer));
    let callback_url = format!("http://{}/login/sso/callback", kms.addr);
    for (name, value) in [
        ("response_type", "code"),
        ("client_id", CLIENT_ID),
        ("redirect_uri", callback_url.as_str()),
        ("code_challenge_method", "S256"),
    ] {
        assert_eq!(query[name], value, "{name}");
    }
    let scopes: Vec<&str> = query["scope"].split(' ').collect();
    assert!(
        scopes.contains(&"openid") && scopes.contains(&"groups"),
        "{scopes:?}"
    );
    for random in ["state", "nonce", "code_challenge"] {
        assert!(query[random].len() >= 32, "{random}: {}", query[random]);
    }
    assert_ne!(query["state"], query["nonce"]);
    assert!(user_names(&kms).await.iter().all(|n| n != "alice"));

    let claims = double.claims(Some(&query["nonce"]), &["sre", "dev"]);
    double.answer(200, tokens(&key.sign(&claims), "provider-refresh-1"));
    let signed_in = callback(&kms, "code-1", &query["state"]).await;
    assert_eq!(signed_in.status, StatusCode::OK, "{}", signed_in.text);
    let cookie = signed_in.headers["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("kms_console="), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(
        signed_in
            .text
            .contains(r#"http-equiv="refresh" content="0;url=/""#),
        "{}",
        signed_in.text
    );

    // The code went to the token endpoint with the verifier of the challenge, the redirect URI
    // and the client's credentials (client_secret_basic).
    let posted = double.received("/token");
    assert_eq!(posted.len(), 1);
    let form = &posted[0].form;
    assert_eq!(form["grant_type"], "authorization_code");
    assert_eq!(form["code"], "code-1");
    assert_eq!(form["redirect_uri"], callback_url);
    assert_eq!(s256(&form["code_verifier"]), query["code_challenge"]);
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
    assert_eq!(posted[0].authorization, Some(format!("Basic {basic}")));
    assert!(!form.contains_key("client_secret"), "no secret in the form");

    // The person became user alice, a member of default as group sre says; the cookie works.
    assert!(user_names(&kms).await.contains(&"alice".to_owned()));
    assert_eq!(
        role_in_default(&kms, "alice").await.as_deref(),
        Some("member")
    );
    let value = cookie.trim_start_matches("kms_console=").split(';').next();
    let home = page(&kms, Method::GET, "/", value, &[], None).await;
    assert_eq!(location(&home).0, "/p/default/sessions");
    let sessions = page(&kms, Method::GET, "/p/default/sessions", value, &[], None).await;
    assert_eq!(sessions.status, StatusCode::OK, "{}", sessions.text);
    assert!(sessions.text.contains("alice"), "{}", sessions.text);
    kms.assert_never_leaked(CLIENT_SECRET);
}

#[tokio::test]
async fn the_cli_exchanges_its_loopback_code_once_with_its_verifier() {
    let (kms, double, key) = world().await;
    let verifier = "a-verifier-only-this-cli-knows-0123456789abcdef";
    // A wrong verifier is refused, and the code is spent by the attempt.
    let code = loopback_code(&kms, &double, &key, verifier, &["sre"]).await;
    for (tried, why) in [
        (
            "another-verifier-0123456789-0123456789-abcdef",
            "verifier does not match",
        ),
        (verifier, "already used"),
    ] {
        let body = json!({"code": code, "verifier": tried});
        let refused = kms.call(Method::POST, "/v1/sso/exchange", None, body).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.json);
        assert!(refused.message().contains(why), "{}", refused.message());
    }

    let code = loopback_code(&kms, &double, &key, verifier, &["sre"]).await;
    let body = json!({"code": code, "verifier": verifier});
    let exchanged = kms.call(Method::POST, "/v1/sso/exchange", None, body.clone());
    let credential = exchanged.await.expect(StatusCode::OK);
    let access = text(&credential["access_token"]);
    assert!(access.starts_with("kmss_"), "{access}");
    assert!(text(&credential["refresh_token"]).starts_with("kmsr_"));
    assert_eq!(credential["user"], "alice");
    assert_eq!(credential["provider"], "corp");
    assert_eq!(credential["admin"], false);
    let again = kms.call(Method::POST, "/v1/sso/exchange", None, body).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED, "codes work once");

    let me = kms.get("/v1/whoami", &access).await.expect(StatusCode::OK);
    assert_eq!(me["name"], "alice");
    let identity = &me["identity"];
    assert_eq!(identity["issuer"], double.issuer.as_str());
    assert_eq!(identity["subject"], "u-alice");
    assert_eq!(identity["email"], "alice@example.com");
    // The provider's tokens never leave KMS.
    for leaked in ["provider-refresh-1", "provider-access", CLIENT_SECRET] {
        kms.assert_never_leaked(leaked);
    }
    // An API token has no identity.
    let plain = kms
        .get("/v1/whoami", &kms.admin)
        .await
        .expect(StatusCode::OK);
    assert!(plain.get("identity").is_none(), "{plain}");
}

#[tokio::test]
async fn a_session_opened_after_single_sign_on_names_the_person() {
    let (kms, double, key) = world().await;
    let credential = cli_credential(&kms, &double, &key, &["sre"]).await;
    let access = text(&credential["access_token"]);
    let session = session_of(&kms, "alice", &access).await;
    let id = text(&session["id"]);
    let expected = json!({"issuer": double.issuer, "subject": "u-alice",
        "email": "alice@example.com", "name": "Alice A."});
    assert_eq!(session["identity"], expected);
    assert_eq!(session["user"], "alice");
    let shown = kms.get(&format!("/v1/sessions/{id}"), &kms.admin).await;
    assert_eq!(shown.expect(StatusCode::OK)["identity"], expected);
    let own = kms.get(&format!("/v1/sessions/{id}"), &access).await;
    assert_eq!(own.expect(StatusCode::OK)["identity"], expected);
}

#[tokio::test]
async fn a_rotated_key_is_fetched_when_a_token_names_it() {
    let (kms, double, old) = world().await;
    cli_credential(&kms, &double, &old, &["sre"]).await;
    let fetched = double.received("/jwks").len();
    let new = Key::new("k2");
    double.publish(&[&old, &new]);
    // KMS fetches the keys again at most every five seconds; a sign-in refused meanwhile
    // creates nothing and the next one succeeds.
    let deadline = Instant::now() + Duration::from_secs(10);
    let credential = loop {
        let query = begin(&kms, "/login/sso/corp").await;
        let claims = double.claims(Some(&query["nonce"]), &["sre"]);
        double.answer(200, tokens(&new.sign(&claims), "provider-refresh-2"));
        let answer = callback(&kms, "code-rotated", &query["state"]).await;
        if answer.status == StatusCode::OK {
            break answer;
        }
        assert!(answer.text.contains("does not publish"), "{}", answer.text);
        assert!(answer.headers.get("set-cookie").is_none());
        assert!(Instant::now() < deadline, "the new key was never fetched");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(credential.headers["set-cookie"]
        .to_str()
        .unwrap()
        .starts_with("kms_console="));
    assert!(
        double.received("/jwks").len() > fetched,
        "keys fetched again"
    );
    // The old key still verifies while it is published.
    let query = begin(&kms, "/login/sso/corp").await;
    let claims = double.claims(Some(&query["nonce"]), &["sre"]);
    double.answer(200, tokens(&old.sign(&claims), "provider-refresh-3"));
    let answer = callback(&kms, "code-old", &query["state"]).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
}

#[tokio::test]
async fn a_refresh_follows_the_groups_and_ends_what_a_lost_role_allowed() {
    let (kms, double, key) = world().await;
    let first = cli_credential(&kms, &double, &key, &["sre"]).await;
    let session = session_of(&kms, "alice", &text(&first["access_token"])).await;
    let id = text(&session["id"]);

    let claims = double.claims(None, &["sre"]);
    double.answer(200, tokens(&key.sign(&claims), "provider-refresh-2"));
    let old_refresh = first["refresh_token"].clone();
    let body = json!({ "refresh_token": old_refresh });
    let renewed = kms.call(Method::POST, "/v1/sso/refresh", None, body.clone());
    let renewed = renewed.await.expect(StatusCode::OK);
    assert_ne!(renewed["refresh_token"], old_refresh);
    assert_ne!(renewed["access_token"], first["access_token"]);
    let access = text(&renewed["access_token"]);
    kms.get("/v1/whoami", &access).await.expect(StatusCode::OK);
    let posted = double.received("/token");
    let form = &posted.last().unwrap().form;
    assert_eq!(form["grant_type"], "refresh_token");
    assert_eq!(form["refresh_token"], "provider-refresh-1");
    assert!(posted.last().unwrap().authorization.is_some());
    assert_eq!(
        ended(&kms, &id).await.0,
        "active",
        "a refresh alone ends nothing"
    );
    // Refresh tokens work once.
    let replayed = kms.call(Method::POST, "/v1/sso/refresh", None, body).await;
    assert_eq!(
        replayed.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        replayed.json
    );

    // The provider now says alice left group sre: she is no member of default any more and her
    // session there ends.
    let claims = double.claims(None, &["dev"]);
    double.answer(200, tokens(&key.sign(&claims), "provider-refresh-3"));
    let body = json!({ "refresh_token": renewed["refresh_token"] });
    let third = kms.call(Method::POST, "/v1/sso/refresh", None, body).await;
    let third = third.expect(StatusCode::OK);
    assert_eq!(
        double.received("/token").last().unwrap().form["refresh_token"],
        "provider-refresh-2"
    );
    assert_eq!(role_in_default(&kms, "alice").await, None);
    let (status, cause) = ended(&kms, &id).await;
    assert_ne!(status, "active");
    assert!(
        ["membership_removed", "role_changed"].contains(&cause.as_str()),
        "{cause}"
    );
    let refused = kms
        .open_session(&text(&third["access_token"]), "prod", 60)
        .await;
    assert!(
        [403, 404].contains(&refused.status.as_u16()),
        "{}",
        refused.json
    );
}

#[tokio::test]
async fn a_refresh_the_provider_refuses_signs_the_person_out_and_ends_their_sessions() {
    let (kms, double, key) = world().await;
    let credential = cli_credential(&kms, &double, &key, &["sre"]).await;
    let access = text(&credential["access_token"]);
    let session = session_of(&kms, "alice", &access).await;
    double.answer(
        400,
        json!({"error": "invalid_grant", "error_description": "user disabled"}),
    );
    let body = json!({ "refresh_token": credential["refresh_token"] });
    let refused = kms
        .call(Method::POST, "/v1/sso/refresh", None, body.clone())
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.json);
    assert!(
        refused.message().contains("sign in again"),
        "{}",
        refused.message()
    );
    assert!(
        refused.message().contains("invalid_grant"),
        "{}",
        refused.message()
    );
    let (status, _) = ended(&kms, &text(&session["id"])).await;
    assert_ne!(status, "active");
    assert_eq!(
        kms.get("/v1/whoami", &access).await.status,
        StatusCode::UNAUTHORIZED
    );
    let again = kms.call(Method::POST, "/v1/sso/refresh", None, body).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        double.received("/token").len(),
        2,
        "a revoked refresh token stays in KMS"
    );
}

#[tokio::test]
async fn the_device_grant_is_polled_through_kms_until_the_person_finished() {
    let (kms, double, key) = world().await;
    let body = json!({"provider": "corp"});
    let started = kms.call(Method::POST, "/v1/sso/device", None, body).await;
    let started = started.expect(StatusCode::OK);
    assert_eq!(started["user_code"], "WDJB-MJHT");
    assert_eq!(
        started["verification_uri"],
        format!("{}/activate", double.issuer)
    );
    assert_eq!(started["interval_secs"], 1);
    let asked = double.received("/device");
    assert_eq!(asked.len(), 1);
    assert!(asked[0].form["scope"].split(' ').any(|s| s == "openid"));
    assert!(asked[0]
        .authorization
        .as_deref()
        .unwrap()
        .starts_with("Basic "));
    assert!(
        !started.to_string().contains(DEVICE_CODE),
        "the device code stays in KMS"
    );

    let poll = json!({"handle": started["handle"]});
    double.answer(400, json!({"error": "authorization_pending"}));
    let pending = kms
        .call(Method::POST, "/v1/sso/device/poll", None, poll.clone())
        .await;
    let pending = pending.expect(StatusCode::OK);
    assert_eq!(pending["status"], "pending", "{pending}");
    assert!(user_names(&kms).await.iter().all(|n| n != "alice"));

    let claims = double.claims(None, &["sre"]);
    double.answer(200, tokens(&key.sign(&claims), "provider-refresh-1"));
    let done = kms
        .call(Method::POST, "/v1/sso/device/poll", None, poll.clone())
        .await;
    let done = done.expect(StatusCode::OK);
    assert_eq!(done["status"], "complete", "{done}");
    let access = text(&done["credential"]["access_token"]);
    assert!(access.starts_with("kmss_"));
    let posted = double.received("/token");
    assert_eq!(posted.len(), 2);
    for sent in &posted {
        assert_eq!(
            sent.form["grant_type"],
            "urn:ietf:params:oauth:grant-type:device_code"
        );
        assert_eq!(sent.form["device_code"], DEVICE_CODE);
    }
    let me = kms.get("/v1/whoami", &access).await.expect(StatusCode::OK);
    assert_eq!(me["identity"]["subject"], "u-alice");
    assert_eq!(
        role_in_default(&kms, "alice").await.as_deref(),
        Some("member")
    );

    let spent = kms
        .call(Method::POST, "/v1/sso/device/poll", None, poll)
        .await;
    assert_eq!(spent.status, StatusCode::UNAUTHORIZED, "{}", spent.json);
    assert_eq!(double.received("/token").len(), 2);
}
