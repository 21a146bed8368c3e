//! Single sign-on and the people it makes KMS users: users required to exist first, the names
//! people get, organisation administrator following a group, a user disabled in KMS, a provider
//! deleted, and what the console shows of providers and of the person behind a session. Against
//! the provider double of `sso/double.rs`.

use http::{Method, StatusCode};
use serde_json::{json, Value};

use super::console::{page, sign_in, Page};
use super::sso::{
    begin, browse, callback, cli_callback, cli_credential, ended, location, provider,
    provider_with, role_in_default, session_of, sre_member, text, tokens, user_names, world,
    Double, Key, CLIENT_ID, CLIENT_SECRET,
};
use super::{Kms, Reply};

const VERIFIER: &str = "the-cli-verifier-of-the-people-tests-0123456789";

/// A CLI sign-in as `person` (claims replacing the double's, see `Double::claims_of`) with
/// `groups`: the credential, or KMS's page refusing it.
async fn sign_in_as(
    kms: &Kms,
    double: &Double,
    key: &Key,
    groups: &[&str],
    person: Value,
) -> Result<Value, Page> {
    let answer = cli_callback(kms, double, key, VERIFIER, groups, &person).await;
    if answer.status != StatusCode::SEE_OTHER {
        return Err(answer);
    }
    let (to, back) = location(&answer);
    assert_eq!(to, "http://127.0.0.1:45871/callback");
    let body = json!({"code": back["code"], "verifier": VERIFIER});
    let exchanged = kms.call(Method::POST, "/v1/sso/exchange", None, body).await;
    Ok(exchanged.expect(StatusCode::OK))
}

#[track_caller]
fn signed_in(result: Result<Value, Page>) -> Value {
    result.unwrap_or_else(|page| panic!("refused ({}): {}", page.status, page.text))
}

/// The refusal of a sign-in: 403, the page says `why`, no cookie.
#[track_caller]
fn forbidden(result: Result<Value, Page>, why: &str) {
    let page = match result {
        Ok(credential) => panic!("{why}: signed in: {credential}"),
        Err(page) => page,
    };
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{why}: {}", page.text);
    assert!(page.text.contains(why), "{why}: {}", page.text);
    assert!(page.headers.get("set-cookie").is_none(), "{why}: a cookie");
}

/// A refresh of `credential`, the provider answering an ID token for `person` with `groups`.
async fn refresh_as(
    kms: &Kms,
    double: &Double,
    key: &Key,
    credential: &Value,
    groups: &[&str],
) -> Reply {
    let claims = double.claims_of(None, groups, &json!({}));
    double.answer(200, tokens(&key.sign(&claims), "provider-refresh-next"));
    let body = json!({"refresh_token": credential["refresh_token"]});
    kms.call(Method::POST, "/v1/sso/refresh", None, body).await
}

/// `GET /v1/whoami` with the credential's access token.
async fn whoami(kms: &Kms, credential: &Value) -> Value {
    let access = text(&credential["access_token"]);
    kms.get("/v1/whoami", &access).await.expect(StatusCode::OK)
}

/// The rule making group `k8s-admins` organisation administrators.
fn k8s_admins() -> Value {
    json!({"group": "k8s-admins", "target": {"kind": "org_admin"}})
}

#[tokio::test]
async fn required_users_are_linked_once_to_the_user_an_administrator_created() {
    let kms = Kms::start().await;
    let key = Key::new("k1");
    let double = Double::start(&[&key]).await;
    let settings = json!({"require_existing_users": true, "rules": []});
    provider_with(&kms, &double, "corp", settings).await;
    let before = user_names(&kms).await;

    // Nobody created alice: refused with the command to ask for, and nothing is created.
    let first = sign_in_as(&kms, &double, &key, &["sre"], json!({})).await;
    forbidden(first, "kms-pam user create alice");
    assert_eq!(user_names(&kms).await, before, "nothing created");

    let create = json!({"name": "alice"});
    kms.post("/v1/users", &kms.admin, create)
        .await
        .expect(StatusCode::CREATED);
    let credential = signed_in(sign_in_as(&kms, &double, &key, &["sre"], json!({})).await);
    assert_eq!(credential["user"], "alice");
    let me = whoami(&kms, &credential).await;
    assert_eq!(me["name"], "alice");
    let expected = json!({"issuer": double.issuer, "subject": "u-alice",
        "email": "alice@example.com", "name": "Alice A."});
    assert_eq!(me["identity"], expected);
    // Signing in again finds her by her identity.
    let again = signed_in(sign_in_as(&kms, &double, &key, &["sre"], json!({})).await);
    assert_eq!(again["user"], "alice");

    // Another person whose name would be alice too is refused: alice is somebody's already.
    let other = json!({"sub": "u-alice-impostor", "email": "alice@elsewhere.example"});
    let impostor = sign_in_as(&kms, &double, &key, &["sre"], other).await;
    forbidden(impostor, "already linked");
    let mut expected_names = before.clone();
    expected_names.push("alice".to_owned());
    expected_names.sort();
    let mut names = user_names(&kms).await;
    names.sort();
    assert_eq!(names, expected_names);

    // bob exists, but an email the provider did not verify names nobody.
    kms.post("/v1/users", &kms.admin, json!({"name": "bob"}))
        .await
        .expect(StatusCode::CREATED);
    let unverified = json!({"sub": "u-bob", "email": "bob@example.com",
        "email_verified": false, "preferred_username": null});
    let refused = sign_in_as(&kms, &double, &key, &[], unverified).await;
    forbidden(refused, "verified");
    // The same person with the email verified is linked to bob, named after the email.
    let verified = json!({"sub": "u-bob", "email": "bob@example.com",
        "email_verified": true, "preferred_username": null});
    let bob = signed_in(sign_in_as(&kms, &double, &key, &[], verified).await);
    assert_eq!(bob["user"], "bob");
    assert_eq!(whoami(&kms, &bob).await["identity"]["subject"], "u-bob");
}

#[tokio::test]
async fn people_are_named_after_their_email_and_never_take_over_a_user() {
    let (kms, double, key) = world().await;
    // A preferred_username that is no KMS name: the email's local part, lowercased, with what a
    // name cannot hold made '-'.
    let alice = json!({"sub": "u-as", "preferred_username": "Alice Smith",
        "email": "Alice.Smith+k8s@Example.com"});
    let first = signed_in(sign_in_as(&kms, &double, &key, &["sre"], alice).await);
    assert_eq!(first["user"], "alice.smith-k8s");
    // Her email and username change at the provider: she is still that user (issuer and
    // subject), and her identity says what the provider says now.
    let moved = json!({"sub": "u-as", "preferred_username": "asmith",
        "email": "asmith@corp.example"});
    let again = signed_in(sign_in_as(&kms, &double, &key, &["sre"], moved).await);
    assert_eq!(again["user"], "alice.smith-k8s");
    let me = whoami(&kms, &again).await;
    assert_eq!(me["name"], "alice.smith-k8s");
    assert_eq!(me["identity"]["email"], "asmith@corp.example");
    assert!(!user_names(&kms).await.contains(&"asmith".to_owned()));

    // carol.x exists and is nobody's identity: the person who would be carol.x becomes
    // carol.x-2, and stays there.
    kms.post("/v1/users", &kms.admin, json!({"name": "carol.x"}))
        .await
        .expect(StatusCode::CREATED);
    let carol = json!({"sub": "u-carol", "preferred_username": "Carol X",
        "email": "Carol.X@example.com"});
    for _ in 0..2 {
        let signed = sign_in_as(&kms, &double, &key, &["sre"], carol.clone()).await;
        let credential = signed_in(signed);
        assert_eq!(credential["user"], "carol.x-2");
        let me = whoami(&kms, &credential).await;
        assert_eq!(me["name"], "carol.x-2");
        assert_eq!(me["identity"]["subject"], "u-carol");
    }
    let names = user_names(&kms).await;
    let carols: Vec<&String> = names.iter().filter(|n| n.starts_with("carol")).collect();
    assert_eq!(carols, ["carol.x", "carol.x-2"], "{names:?}");
}

#[tokio::test]
async fn organisation_administrator_follows_its_group_and_what_it_allowed_ends_with_it() {
    let kms = Kms::start().await;
    let key = Key::new("k1");
    let double = Double::start(&[&key]).await;
    provider(&kms, &double, "corp", json!([k8s_admins()])).await;
    kms.gateway("gw").await;
    kms.resource("prod", "gw").await;

    let credential = signed_in(sign_in_as(&kms, &double, &key, &["k8s-admins"], json!({})).await);
    assert_eq!(credential["admin"], true);
    assert_eq!(whoami(&kms, &credential).await["admin"], true);
    let access = text(&credential["access_token"]);
    kms.get("/v1/users", &access).await.expect(StatusCode::OK);
    // An administrator needs no grant.
    let opened = kms.open_session(&access, "prod", 300).await;
    let id = text(&opened.expect(StatusCode::CREATED)["session"]["id"]);

    // The provider no longer puts alice in k8s-admins.
    let renewed = refresh_as(&kms, &double, &key, &credential, &["dev"]).await;
    let renewed = renewed.expect(StatusCode::OK);
    assert_eq!(renewed["admin"], false);
    assert_eq!(whoami(&kms, &renewed).await["admin"], false);
    let access = text(&renewed["access_token"]);
    let users = kms.get("/v1/users", &access).await;
    assert_eq!(users.status, StatusCode::FORBIDDEN, "{}", users.json);
    let (status, cause) = ended(&kms, &id).await;
    assert_ne!(status, "active");
    assert!(
        ["membership_removed", "role_changed"].contains(&cause.as_str()),
        "{cause}"
    );
}

#[tokio::test]
async fn an_administrator_left_a_member_loses_the_sessions_no_grant_allows() {
    let kms = Kms::start().await;
    let key = Key::new("k1");
    let double = Double::start(&[&key]).await;
    provider(&kms, &double, "corp", json!([k8s_admins(), sre_member()])).await;
    kms.gateway("gw").await;
    kms.resource("prod", "gw").await;
    let groups = ["k8s-admins", "sre"];
    let credential = signed_in(sign_in_as(&kms, &double, &key, &groups, json!({})).await);
    assert_eq!(credential["admin"], true);
    assert_eq!(
        role_in_default(&kms, "alice").await.as_deref(),
        Some("member")
    );
    let opened = kms
        .open_session(&text(&credential["access_token"]), "prod", 300)
        .await;
    let id = text(&opened.expect(StatusCode::CREATED)["session"]["id"]);

    // Left in sre only: a member of default, whom no grant allows that session.
    let renewed = refresh_as(&kms, &double, &key, &credential, &["sre"]).await;
    let renewed = renewed.expect(StatusCode::OK);
    assert_eq!(renewed["admin"], false);
    assert_eq!(
        role_in_default(&kms, "alice").await.as_deref(),
        Some("member")
    );
    let (status, cause) = ended(&kms, &id).await;
    assert_ne!(status, "active", "a session no grant allows outlived admin");
    assert!(
        ["membership_removed", "role_changed"].contains(&cause.as_str()),
        "{cause}"
    );
    // As a member she now needs a grant, like any member.
    let access = text(&renewed["access_token"]);
    let refused = kms.open_session(&access, "prod", 60).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.json);
    kms.grant("prod", "alice", 600).await;
    let granted = kms.open_session(&access, "prod", 60).await;
    let granted = text(&granted.expect(StatusCode::CREATED)["session"]["id"]);
    // A refresh that changes nothing leaves the granted session open.
    let latest = refresh_as(&kms, &double, &key, &renewed, &["sre"]).await;
    latest.expect(StatusCode::OK);
    assert_eq!(ended(&kms, &granted).await.0, "active");
}

#[tokio::test]
async fn a_user_disabled_in_kms_cannot_sign_in_nor_refresh() {
    let (kms, double, key) = world().await;
    let credential = cli_credential(&kms, &double, &key, &["sre"]).await;
    let access = text(&credential["access_token"]);
    kms.post("/v1/users/alice/disable", &kms.admin, Value::Null)
        .await
        .expect(StatusCode::OK);

    // The console's sign-in and the CLI's are refused, naming the user.
    let query = begin(&kms, "/login/sso/corp").await;
    let claims = double.claims(Some(&query["nonce"]), &["sre"]);
    double.answer(200, tokens(&key.sign(&claims), "provider-refresh-2"));
    let console = callback(&kms, "code-1", &query["state"]).await;
    forbidden(Err(console), "user alice is disabled");
    let cli = sign_in_as(&kms, &double, &key, &["sre"], json!({})).await;
    forbidden(cli, "user alice is disabled");

    // The refresh is refused before the provider is asked; the access token is refused.
    let asked = double.received("/token").len();
    let body = json!({"refresh_token": credential["refresh_token"]});
    let refresh = kms.call(Method::POST, "/v1/sso/refresh", None, body).await;
    assert_eq!(refresh.status, StatusCode::UNAUTHORIZED, "{}", refresh.json);
    assert!(
        refresh.message().contains("alice is disabled"),
        "{}",
        refresh.message()
    );
    assert_eq!(double.received("/token").len(), asked);
    let me = kms.get("/v1/whoami", &access).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED, "{}", me.json);
    assert!(me.message().contains("disabled"), "{}", me.message());
}

#[tokio::test]
async fn a_deleted_provider_signs_nobody_in_and_its_credentials_stop() {
    let (kms, double, key) = world().await;
    let credential = cli_credential(&kms, &double, &key, &["sre"]).await;
    let access = text(&credential["access_token"]);
    kms.get("/v1/whoami", &access).await.expect(StatusCode::OK);
    // A sign-in begun before the deletion.
    let query = begin(&kms, "/login/sso/corp").await;
    let bob = kms.user("bob", false).await;
    let by_bob = kms.delete("/v1/sso/providers/corp", &bob).await;
    assert_eq!(by_bob.status, StatusCode::FORBIDDEN, "{}", by_bob.json);

    let deleted = kms.delete("/v1/sso/providers/corp", &kms.admin).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.json);
    let me = kms.get("/v1/whoami", &access).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED, "{}", me.json);
    let body = json!({"refresh_token": credential["refresh_token"]});
    let refresh = kms.call(Method::POST, "/v1/sso/refresh", None, body).await;
    assert_eq!(refresh.status, StatusCode::UNAUTHORIZED, "{}", refresh.json);
    let names = kms.call(Method::GET, "/v1/sso/providers/names", None, Value::Null);
    assert_eq!(names.await.expect(StatusCode::OK)["providers"], json!([]));
    let login = browse(&kms, "/login").await;
    assert!(!login.text.contains("Sign in with corp"), "{}", login.text);
    let start = browse(&kms, "/login/sso/corp").await;
    assert_eq!(start.status, StatusCode::BAD_REQUEST, "{}", start.text);
    assert!(start.text.contains("no single sign-on provider"));

    // The sign-in in flight cannot finish: no code is exchanged with the deleted provider.
    let asked = double.received("/token").len();
    let claims = double.claims(Some(&query["nonce"]), &["sre"]);
    double.answer(200, tokens(&key.sign(&claims), "provider-refresh-2"));
    let finished = callback(&kms, "code-late", &query["state"]).await;
    assert_ne!(finished.status, StatusCode::OK, "{}", finished.text);
    assert!(finished.headers.get("set-cookie").is_none());
    assert_eq!(double.received("/token").len(), asked);
}

/// The `<a …>` element whose attributes hold `data-provider="NAME"`, and its text.
fn provider_link(html: &str, name: &str) -> (String, String) {
    let attribute = format!("data-provider=\"{name}\"");
    let at = html
        .find(&attribute)
        .unwrap_or_else(|| panic!("no {attribute}: {html}"));
    let open = html[..at].rfind('<').unwrap();
    let close = at + html[at..].find('>').unwrap();
    let end = close + html[close..].find("</a>").unwrap();
    (
        html[open..=close].to_owned(),
        html[close + 1..end].to_owned(),
    )
}

/// The rows of a CSV export, each field unquoted (fields hold no line breaks here).
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    let row = |line: &str| {
        let (mut fields, mut field, mut quoted) = (Vec::new(), String::new(), false);
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '"' if quoted && chars.peek() == Some(&'"') => {
                    field.push('"');
                    chars.next();
                }
                '"' => quoted = !quoted,
                ',' if !quoted => fields.push(std::mem::take(&mut field)),
                c => field.push(c),
            }
        }
        fields.push(field);
        fields
    };
    text.lines().map(row).collect()
}

#[tokio::test]
async fn the_console_shows_providers_to_administrators_and_the_person_on_sessions() {
    let (kms, double, key) = world().await;
    let other = Double::start(&[&key]).await;
    provider(&kms, &other, "backup", json!([k8s_admins()])).await;
    let admin = sign_in(&kms, &kms.admin.clone()).await;
    let get = |path: String, cookie: String| {
        let kms = &kms;
        async move { page(kms, Method::GET, &path, Some(&cookie), &[], None).await }
    };
    let sso = get("/sso".into(), admin.clone()).await;
    assert_eq!(sso.status, StatusCode::OK, "{}", sso.text);
    let callback_url = format!("http://{}/login/sso/callback", kms.addr);
    for shown in [
        "corp",
        "backup",
        double.issuer.as_str(),
        other.issuer.as_str(),
        CLIENT_ID,
        "sre=default:member",
        "k8s-admins=org-admin",
        callback_url.as_str(),
    ] {
        assert!(sso.text.contains(shown), "{shown}: {}", sso.text);
    }
    assert!(!sso.text.contains(CLIENT_SECRET), "{}", sso.text);
    let bob = kms.user("bob", false).await;
    let bob = sign_in(&kms, &bob).await;
    let hidden = get("/sso".into(), bob).await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND, "{}", hidden.text);
    assert!(!hidden.text.contains(&double.issuer), "{}", hidden.text);

    let login = browse(&kms, "/login").await;
    for name in ["corp", "backup"] {
        let (tag, label) = provider_link(&login.text, name);
        assert!(tag.starts_with("<a "), "{tag}");
        let classes = tag.split("class=\"").nth(1).unwrap().split('"').next();
        assert!(classes.unwrap().split(' ').any(|c| c == "sso"), "{tag}");
        assert!(
            tag.contains(&format!("href=\"/login/sso/{name}\"")),
            "{tag}"
        );
        assert_eq!(label, format!("Sign in with {name}"));
    }

    // A session opened after single sign-on, and one opened with an API token.
    let credential = cli_credential(&kms, &double, &key, &["sre"]).await;
    let session = session_of(&kms, "alice", &text(&credential["access_token"])).await;
    let id = text(&session["id"]);
    let plain = kms.open_session(&kms.admin, "prod", 300).await;
    let plain = text(&plain.expect(StatusCode::CREATED)["session"]["id"]);
    let shown = get(format!("/p/default/sessions/{id}"), admin.clone()).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.text);
    let at = shown.text.find("Signed in as").expect("Signed in as");
    let person = &shown.text[at..];
    for part in ["alice@example.com", "u-alice", double.issuer.as_str()] {
        assert!(person.contains(part), "{part}: {person}");
    }
    let shown = get(format!("/p/default/sessions/{plain}"), admin.clone()).await;
    assert!(!shown.text.contains("Signed in as"), "{}", shown.text);

    let csv = get("/p/default/sessions?format=csv".into(), admin.clone()).await;
    assert_eq!(csv.status, StatusCode::OK, "{}", csv.text);
    let rows = csv_rows(&csv.text);
    let column = |name: &str| rows[0].iter().position(|c| c == name).unwrap();
    let row_of = |id: &str| rows.iter().find(|r| r[0] == id).unwrap().clone();
    let (sso_row, plain_row) = (row_of(&id), row_of(&plain));
    for (name, value) in [
        ("identity_issuer", double.issuer.as_str()),
        ("identity_subject", "u-alice"),
        ("identity_email", "alice@example.com"),
    ] {
        assert_eq!(sso_row[column(name)], value, "{name}: {}", csv.text);
        assert_eq!(plain_row[column(name)], "", "{name}: {}", csv.text);
    }
    let json = get("/p/default/sessions?format=json".into(), admin).await;
    let rows: Value = serde_json::from_str(&json.text).unwrap();
    let rows = rows.as_array().unwrap();
    let row = rows.iter().find(|r| r["id"] == id.as_str()).unwrap();
    let expected = json!({"issuer": double.issuer, "subject": "u-alice",
        "email": "alice@example.com", "name": "Alice A."});
    assert_eq!(row["identity"], expected);
    let row = rows.iter().find(|r| r["id"] == plain.as_str()).unwrap();
    assert!(row.get("identity").is_none(), "{row}");
}
