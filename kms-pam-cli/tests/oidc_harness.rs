//! The single sign-on tests' OpenID Connect provider (`support::oidc`), exercised the way KMS
//! uses it by a small relying party written here: discovery; the authorization code flow with
//! PKCE in a real headless Chromium, landing on a loopback listener; the token exchange; refresh
//! after the account's groups changed; the device flow; key rotation; a disabled account.

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::support::browser::Driver;
use crate::support::oidc::{
    approve_device_code, form, form_encode, request, sign_in_at_provider, OidcClient, OidcProvider,
    OidcUser,
};

const SCOPE: &str = "openid email profile groups offline_access";

/// A random base64url string of `bytes` random bytes.
fn random(bytes: usize) -> String {
    let mut buffer = vec![0; bytes];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut buffer).unwrap();
    URL_SAFE_NO_PAD.encode(buffer)
}

/// The header and payload of a JWT, undecoded signature aside.
fn jwt_parts(jwt: &str) -> (Value, Value) {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "{jwt}");
    let decode = |part: &str| -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    };
    (decode(parts[0]), decode(parts[1]))
}

/// Verifies an RS256 JWT's signature with the key of its `kid` in `jwks`.
fn verify_rs256(jwt: &str, jwks: &Value) {
    let (header, _) = jwt_parts(jwt);
    assert_eq!(header["alg"], "RS256");
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|key| key["kid"] == header["kid"])
        .unwrap_or_else(|| panic!("no key {} in {jwks}", header["kid"]));
    let component = |name: &str| URL_SAFE_NO_PAD.decode(key[name].as_str().unwrap()).unwrap();
    let (signed, signature) = jwt.rsplit_once('.').unwrap();
    ring::signature::RsaPublicKeyComponents {
        n: component("n"),
        e: component("e"),
    }
    .verify(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        signed.as_bytes(),
        &URL_SAFE_NO_PAD.decode(signature).unwrap(),
    )
    .expect("the ID token's signature verifies with its kid's key");
}

/// Serves the redirect URI: every request's query string goes to `queries`.
async fn redirect_listener(
    listener: tokio::net::TcpListener,
    queries: mpsc::UnboundedSender<String>,
) {
    loop {
        let (stream, _) = listener.accept().await.unwrap();
        let queries = queries.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let _ = queries.send(request.uri().query().unwrap_or_default().to_owned());
                async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(
                        http_body_util::Full::new(hyper::body::Bytes::from("signed in")),
                    ))
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// A query string's pairs, percent-decoded.
fn query_map(query: &str) -> HashMap<String, String> {
    let decode = |part: &str| {
        let bytes = part.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'%' if i + 2 < bytes.len() => {
                    out.push(u8::from_str_radix(&part[i + 1..i + 3], 16).unwrap());
                    i += 3;
                }
                b'+' => {
                    out.push(b' ');
                    i += 1;
                }
                byte => {
                    out.push(byte);
                    i += 1;
                }
            }
        }
        String::from_utf8(out).unwrap()
    };
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
        .collect()
}

/// A POST to the token endpoint with HTTP Basic client authentication (id and secret
/// form-encoded first, RFC 6749 2.3.1).
async fn token_basic(
    token_endpoint: &str,
    client: &OidcClient,
    params: &[(&str, &str)],
) -> (u16, Value) {
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            form_encode(&client.id),
            form_encode(&client.secret)
        ))
    );
    let headers = [
        ("authorization", basic.as_str()),
        ("content-type", "application/x-www-form-urlencoded"),
    ];
    let (status, body) = request("POST", token_endpoint, &headers, &form(params)).await;
    (
        status,
        serde_json::from_str(&body).unwrap_or_else(|_| panic!("{body}")),
    )
}

/// A POST to the token endpoint with `client_secret_post`.
async fn token_post(endpoint: &str, client: &OidcClient, params: &[(&str, &str)]) -> (u16, Value) {
    let mut params = params.to_vec();
    params.extend([
        ("client_id", client.id.as_str()),
        ("client_secret", client.secret.as_str()),
    ]);
    let headers = [("content-type", "application/x-www-form-urlencoded")];
    let (status, body) = request("POST", endpoint, &headers, &form(&params)).await;
    (
        status,
        serde_json::from_str(&body).unwrap_or_else(|_| panic!("{body}")),
    )
}

async fn get_json(url: &str) -> Value {
    let (status, body) = request("GET", url, &[], "").await;
    assert_eq!(status, 200, "GET {url}: {body}");
    serde_json::from_str(&body).unwrap()
}

fn groups(claims: &Value) -> Vec<&str> {
    claims["groups"]
        .as_array()
        .unwrap_or_else(|| panic!("no groups in {claims}"))
        .iter()
        .map(|group| group.as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_provider_serves_code_refresh_device_flow_and_rotation() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let redirect_uri = format!("http://{}/callback", listener.local_addr().unwrap());
    let (queries, mut redirects) = mpsc::unbounded_channel();
    tokio::spawn(redirect_listener(listener, queries));

    let web = OidcClient::new("kms-web", "web secret:&=", &[&redirect_uri]);
    let device =
        OidcClient::new("kms-device", "device-secret", &[&redirect_uri]).with_client_secret_post();
    let mut provider = OidcProvider::start(
        vec![web.clone(), device.clone()],
        vec![
            OidcUser::new("alice", &["developers", "operators"]),
            OidcUser::new("bob", &["developers"]),
        ],
    )
    .await;
    let issuer = provider.issuer();

    // (a) Discovery: what KMS reads.
    let discovery = get_json(&format!("{issuer}/.well-known/openid-configuration")).await;
    assert_eq!(discovery["issuer"], issuer);
    let endpoint = |name: &str| {
        let url = discovery[name]
            .as_str()
            .unwrap_or_else(|| panic!("no {name}: {discovery}"));
        assert!(url.starts_with(&issuer), "{name}: {url}");
        url.to_owned()
    };
    let (authorization, token, jwks_uri, device_authorization) = (
        endpoint("authorization_endpoint"),
        endpoint("token_endpoint"),
        endpoint("jwks_uri"),
        endpoint("device_authorization_endpoint"),
    );
    assert!(discovery["code_challenge_methods_supported"]
        .as_array()
        .unwrap()
        .contains(&"S256".into()));
    let jwks = get_json(&jwks_uri).await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1, "{jwks}");

    // (b) The authorization code flow with PKCE, signing in in a real browser.
    let driver = Driver::start().await;
    let browser = driver.browser().await;
    let (state, nonce, verifier) = (random(16), random(16), random(32));
    let challenge = URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ));
    let url = format!(
        "{authorization}?{}",
        form(&[
            ("client_id", &web.id),
            ("response_type", "code"),
            ("scope", SCOPE),
            ("redirect_uri", &redirect_uri),
            ("state", &state),
            ("nonce", &nonce),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ])
    );
    browser.goto(&url).await.unwrap();
    sign_in_at_provider(&browser, "alice").await;
    let callback = query_map(&redirects.recv().await.unwrap());
    assert_eq!(callback.get("state"), Some(&state), "{callback:?}");
    assert_eq!(callback.get("iss"), Some(&issuer), "{callback:?}");
    let code = callback
        .get("code")
        .unwrap_or_else(|| panic!("no code: {callback:?}"));
    let landed = browser.current_url().await.unwrap();
    assert!(landed.as_str().starts_with(&redirect_uri), "{landed}");
    browser.close().await.unwrap();

    // Without the verifier the code is refused (PKCE is checked), with it tokens come.
    let exchange = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", redirect_uri.as_str()),
    ];
    let (status, refused) = token_basic(&token, &web, &exchange).await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (400, Some("invalid_grant")),
        "{refused}"
    );
    // The refused attempt does not consume the code (PKCE is checked first).
    let mut with_verifier = exchange.to_vec();
    with_verifier.push(("code_verifier", &verifier));
    let (status, tokens) = token_basic(&token, &web, &with_verifier).await;
    assert_eq!(status, 200, "{tokens}");
    let id_token = tokens["id_token"].as_str().unwrap();
    let (header, claims) = jwt_parts(id_token);
    verify_rs256(id_token, &jwks);
    assert_eq!(header["kid"], jwks["keys"][0]["kid"]);
    assert_eq!(claims["iss"], issuer);
    assert_eq!(claims["aud"], web.id);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["nonce"], nonce.as_str());
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["email_verified"], true);
    assert_eq!(claims["name"], "alice");
    assert_eq!(claims["preferred_username"], "alice");
    assert_eq!(groups(&claims), ["developers", "operators"]);
    let mut refresh_token = tokens["refresh_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no refresh token: {tokens}"))
        .to_owned();

    // (c) A refresh after the account's groups changed: a new ID token with the new groups.
    provider.set_groups("alice", &["developers"]).await;
    let (status, refreshed) = token_basic(
        &token,
        &web,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh_token),
        ],
    )
    .await;
    assert_eq!(status, 200, "{refreshed}");
    let (_, claims) = jwt_parts(refreshed["id_token"].as_str().unwrap());
    assert_eq!(groups(&claims), ["developers"]);
    assert_eq!(
        (claims["sub"].as_str(), claims["aud"].as_str()),
        (Some("alice"), Some("kms-web"))
    );
    let rotated = refreshed["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(
        rotated, refresh_token,
        "every refresh returns a new refresh token"
    );
    refresh_token = rotated;

    // (f) Key rotation: two keys published, the new one signs, the grant survives.
    let old_kid = jwks["keys"][0]["kid"].clone();
    provider.rotate_keys().await;
    assert!(
        provider.log().contains("keys rotated"),
        "{}",
        provider.log()
    );
    let jwks = get_json(&jwks_uri).await;
    let kids: Vec<&Value> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| &key["kid"])
        .collect();
    assert_eq!(kids.len(), 2, "{jwks}");
    assert_eq!(kids[1], &old_kid, "the old key stays published");
    let (status, refreshed) = token_basic(
        &token,
        &web,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh_token),
        ],
    )
    .await;
    assert_eq!(status, 200, "the grant survives a rotation: {refreshed}");
    let id_token = refreshed["id_token"].as_str().unwrap();
    let (header, _) = jwt_parts(id_token);
    assert_eq!(&header["kid"], kids[0], "the new key signs");
    assert_ne!(header["kid"], old_kid);
    verify_rs256(id_token, &jwks);

    // (e) The device flow (client_secret_post): pending until the person approves in a browser.
    let (status, body) = request(
        "POST",
        &device_authorization,
        &[("content-type", "application/x-www-form-urlencoded")],
        &form(&[
            ("client_id", &device.id),
            ("client_secret", &device.secret),
            ("scope", SCOPE),
        ]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let authorization: Value = serde_json::from_str(&body).unwrap();
    let device_code = authorization["device_code"].as_str().unwrap();
    let user_code = authorization["user_code"].as_str().unwrap();
    let verification_uri = authorization["verification_uri"].as_str().unwrap();
    assert!(verification_uri.starts_with(&issuer), "{authorization}");
    let poll = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("device_code", device_code),
    ];
    let (status, pending) = token_post(&token, &device, &poll).await;
    assert_eq!(
        (status, pending["error"].as_str()),
        (400, Some("authorization_pending")),
        "{pending}"
    );
    let browser = driver.browser().await;
    approve_device_code(&browser, verification_uri, user_code, "bob").await;
    browser.close().await.unwrap();
    let (status, tokens) = token_post(&token, &device, &poll).await;
    assert_eq!(status, 200, "{tokens}");
    let (_, claims) = jwt_parts(tokens["id_token"].as_str().unwrap());
    assert_eq!(
        (claims["sub"].as_str(), claims["aud"].as_str()),
        (Some("bob"), Some("kms-device"))
    );
    assert_eq!(claims["email"], "bob@example.com");
    assert_eq!(groups(&claims), ["developers"]);
    let bob_refresh = tokens["refresh_token"].as_str().unwrap().to_owned();

    // (d) A disabled account: its refresh is refused; alice's still works.
    provider.disable_user("bob").await;
    let (status, refused) = token_post(
        &token,
        &device,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &bob_refresh),
        ],
    )
    .await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (400, Some("invalid_grant")),
        "{refused}"
    );

    // Down: nothing answers at the issuer.
    provider.stop();
    assert!(
        tokio::net::TcpStream::connect(issuer.trim_start_matches("http://"))
            .await
            .is_err()
    );
}
