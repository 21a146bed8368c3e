//! ID tokens signed here with P-256 keys (ES256), refused for each way they can be wrong.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use jsonwebtoken::jwk::JwkSet;
use serde_json::{json, Value};

use super::*;
use crate::server::sso::test_key::Key;

const ISSUER: &str = "https://idp.example";
const CLIENT: &str = "kms";

fn keys(of: &[&Key]) -> JwkSet {
    serde_json::from_value(json!({"keys": of.iter().map(|k| k.jwk().clone()).collect::<Vec<_>>()}))
        .unwrap()
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims() -> Value {
    json!({"iss": ISSUER, "aud": CLIENT, "sub": "u-1", "exp": now() + 300, "iat": now(),
        "nonce": "n-1", "email": "alice@example.com", "name": "Alice",
        "groups": ["sre", "dev"], "realm_access": {"roles": ["ops"]}})
}

fn expected(nonce: Option<&'static str>) -> Expected<'static> {
    Expected {
        issuer: ISSUER,
        client_id: CLIENT,
        nonce,
        groups_claim: "groups",
    }
}

fn refusal(token: &str, keys: &JwkSet, nonce: Option<&'static str>) -> String {
    id_token(token, keys, expected(nonce)).unwrap_err().0
}

#[test]
fn a_good_token_gives_the_person_and_their_groups() {
    let key = Key::new("k1");
    let got = id_token(&key.sign(&claims()), &keys(&[&key]), expected(Some("n-1"))).unwrap();
    assert_eq!(got.subject, "u-1");
    assert_eq!(got.email.as_deref(), Some("alice@example.com"));
    assert_eq!(got.groups, ["sre", "dev"]);
    let nested = Expected {
        groups_claim: "realm_access.roles",
        ..expected(None)
    };
    let got = id_token(&key.sign(&claims()), &keys(&[&key]), nested).unwrap();
    assert_eq!(got.groups, ["ops"]);
}

#[test]
fn tokens_wrong_in_any_way_are_refused_with_the_reason() {
    let key = Key::new("k1");
    let set = keys(&[&key]);
    let with = |field: &str, value: Value| {
        let mut c = claims();
        c[field] = value;
        key.sign(&c)
    };
    let cases = [
        (with("aud", json!("someone-else")), "another client"),
        (
            with("aud", json!([CLIENT, "other"])),
            "another client (azp)",
        ),
        (with("iss", json!("https://evil.example")), "another issuer"),
        (with("exp", json!(now() - 3600)), "expired"),
        (with("nbf", json!(now() + 3600)), "not valid yet"),
        (with("nonce", json!("n-2")), "nonce does not match"),
    ];
    for (token, why) in cases {
        let message = refusal(&token, &set, Some("n-1"));
        assert!(message.contains(why), "{why}: {message}");
    }
    // Signed by a key the provider does not publish under that kid.
    let stranger = Key::new("k1");
    assert!(refusal(&stranger.sign(&claims()), &set, None).contains("signature"));
    // A key id the provider does not publish.
    let other = Key::new("k2");
    let token = other.sign(&claims());
    assert!(names_unknown_key(&token, &set));
    assert!(refusal(&token, &set, None).contains("does not publish"));
    // After a rotation both keys are published: the new one verifies.
    assert!(id_token(&token, &keys(&[&key, &other]), expected(None)).is_ok());
    // A tampered payload.
    let good = key.sign(&claims());
    let mut parts: Vec<&str> = good.split('.').collect();
    let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&json!({"sub": "admin"})).unwrap());
    parts[1] = &forged;
    assert!(refusal(&parts.join("."), &set, None).contains("signature"));
    // Not a JWT, and an unsigned one.
    assert!(refusal("garbage", &set, None).contains("not a signed JWT"));
    let none = format!(
        "{}.{}.",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
        parts[1]
    );
    assert!(!refusal(&none, &set, None).is_empty());
}
