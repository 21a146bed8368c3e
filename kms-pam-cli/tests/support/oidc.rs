//! A real OpenID Connect provider for the single sign-on tests: the certified npm package
//! `oidc-provider` (version pinned in `tests/support/oidc/package.json`), run by node from
//! `target/oidc-node`, which `.ci/oidc-node` makes (the README's test command runs it). Each
//! [`OidcProvider`] is its own node process on a free port of 127.0.0.1, configured with the
//! test's clients and users, killed when dropped. `tests/support/oidc/provider.mjs` says what it
//! serves: the provider's routes (discovery, `/auth`, `/token`, `/jwks`, `/device/auth`, `/device`,
//! `/me`, `/token/revocation`) and a test control under `/__test/`.
//!
//! How the provider behaves (what KMS meets):
//! - the login page accepts any password; the login typed is the account id (`sub`); a login that
//!   is not one of the test's users (or a disabled one) signs in but its code is refused at the
//!   token endpoint (`invalid_grant`);
//! - PKCE (S256) is required on every authorization request;
//! - ID tokens carry the claims of every granted scope: `email`, `email_verified` (`email`),
//!   `name`, `preferred_username` (`profile`), `groups` (`groups`);
//! - every code or device code exchange returns a refresh token (no `offline_access` or
//!   `prompt=consent` needed), not bound to the browser session; every refresh returns a NEW
//!   refresh token and a new ID token with the account's current claims, and using a refresh
//!   token a second time revokes the whole grant (`invalid_grant`);
//! - ID tokens are RS256, with a `kid`; the first key signs, rotated-out keys stay in the JWKS.

use std::path::Path;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, Locator};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

/// How a client authenticates at the token endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ClientAuth {
    /// `client_secret_basic`: HTTP Basic with the id and secret.
    Basic,
    /// `client_secret_post`: `client_id` and `client_secret` in the form.
    Post,
}

/// A registered client (a relying party: KMS).
#[derive(Clone, Debug)]
pub(crate) struct OidcClient {
    pub id: String,
    pub secret: String,
    pub redirect_uris: Vec<String>,
    pub auth: ClientAuth,
}

impl OidcClient {
    /// A `client_secret_basic` client.
    pub(crate) fn new(id: &str, secret: &str, redirect_uris: &[&str]) -> Self {
        Self {
            id: id.to_owned(),
            secret: secret.to_owned(),
            redirect_uris: redirect_uris.iter().map(|&uri| uri.to_owned()).collect(),
            auth: ClientAuth::Basic,
        }
    }

    /// The same client, authenticating with `client_secret_post` instead.
    pub(crate) fn with_client_secret_post(mut self) -> Self {
        self.auth = ClientAuth::Post;
        self
    }
}

/// An account at the provider.
#[derive(Clone, Debug)]
pub(crate) struct OidcUser {
    /// What is typed at the login page; the account id, `sub`, and `preferred_username`.
    pub login: String,
    pub email: String,
    pub name: String,
    pub groups: Vec<String>,
}

impl OidcUser {
    /// `LOGIN@example.com`, named `LOGIN`, in `groups`.
    pub(crate) fn new(login: &str, groups: &[&str]) -> Self {
        Self {
            login: login.to_owned(),
            email: format!("{login}@example.com"),
            name: login.to_owned(),
            groups: groups.iter().map(|&group| group.to_owned()).collect(),
        }
    }
}

/// The origins of the providers started by this process, for the browser helpers.
static ORIGINS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// A running provider: a node child, killed on drop.
#[derive(Debug)]
pub(crate) struct OidcProvider {
    child: tokio::process::Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl OidcProvider {
    /// Starts a provider for `clients` and `users` and waits until its discovery document
    /// answers. Panics (never skips) if `target/oidc-node` is missing or node fails, with node's
    /// output.
    pub(crate) async fn start(clients: Vec<OidcClient>, users: Vec<OidcUser>) -> Self {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let install = repo.join("target/oidc-node");
        assert!(
            install
                .join("node_modules/oidc-provider/package.json")
                .exists(),
            "{} is missing: run `.ci/oidc-node` first (the README's test command does: \
             .ci/chart-venv && .ci/oidc-node && cargo test --workspace); the single sign-on \
             tests need the OpenID Connect provider it installs",
            install.display()
        );
        let script = repo.join("kms-pam-cli/tests/support/oidc/provider.mjs");
        let dir = tempfile::tempdir().expect("temp dir");
        let ready = dir.path().join("ready");
        let config = json!({
            "install_dir": install,
            "ready_file": ready,
            "clients": clients.iter().map(|client| json!({
                "client_id": client.id,
                "client_secret": client.secret,
                "redirect_uris": client.redirect_uris,
                "token_endpoint_auth_method": match client.auth {
                    ClientAuth::Basic => "client_secret_basic",
                    ClientAuth::Post => "client_secret_post",
                },
            })).collect::<Vec<_>>(),
            "users": users.iter().map(|user| json!({
                "login": user.login,
                "email": user.email,
                "name": user.name,
                "groups": user.groups,
            })).collect::<Vec<_>>(),
        });
        let config_path = dir.path().join("config.json");
        std::fs::write(&config_path, config.to_string()).expect("write config");
        let log = std::fs::File::create(dir.path().join("provider.log")).expect("log file");
        let child = tokio::process::Command::new(std::env::var("NODE").unwrap_or("node".into()))
            .arg(&script)
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("node (the single sign-on tests need Node.js; .ci/oidc-node says so)");
        let mut provider = Self {
            child,
            port: 0,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while provider.port == 0 {
            if let Ok(port) = std::fs::read_to_string(&ready) {
                provider.port = port.trim().parse().expect("port");
            } else if let Ok(Some(status)) = provider.child.try_wait() {
                provider.fail(&format!("node exited ({status}) before listening"));
            } else if Instant::now() > deadline {
                provider.fail("node did not listen within 30 s");
            } else {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let discovery = format!("{}/.well-known/openid-configuration", provider.issuer());
        loop {
            if let Ok(Ok((200, body))) = tokio::time::timeout(
                Duration::from_secs(5),
                try_request("GET", &discovery, &[], ""),
            )
            .await
            {
                let document: Value = serde_json::from_str(&body).expect("discovery JSON");
                assert_eq!(document["issuer"], provider.issuer(), "{document}");
                break;
            }
            if Instant::now() > deadline {
                provider.fail("the discovery document did not answer within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        ORIGINS.lock().unwrap().push(provider.issuer());
        provider
    }

    fn fail(&self, why: &str) -> ! {
        let log = std::fs::read_to_string(self.dir.path().join("provider.log")).unwrap_or_default();
        panic!("the OpenID Connect provider failed to start: {why}; its output:\n{log}");
    }

    /// `http://127.0.0.1:PORT`, exactly as in the discovery document and the tokens' `iss`.
    pub(crate) fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What node printed so far (warnings, the test control's actions, grant errors).
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("provider.log")).unwrap_or_default()
    }

    async fn control(&self, path: &str, body: Value) {
        let url = format!("{}/__test/{path}", self.issuer());
        let (status, answer) = request("POST", &url, &[], &body.to_string()).await;
        assert_eq!(status, 200, "test control {path}: {answer}");
    }

    /// The account's groups from now on: the next ID token (a refresh's too) carries them.
    pub(crate) async fn set_groups(&self, login: &str, groups: &[&str]) {
        self.control(
            &format!("users/{login}/groups"),
            json!({ "groups": groups }),
        )
        .await;
    }

    /// The account is gone: its codes and refresh tokens are refused (`invalid_grant`).
    pub(crate) async fn disable_user(&self, login: &str) {
        self.control(&format!("users/{login}/disable"), json!({}))
            .await;
    }

    /// A new RS256 key signs from now on; the old ones stay in the JWKS. In process: sessions,
    /// grants and refresh tokens are kept.
    pub(crate) async fn rotate_keys(&self) {
        self.control("rotate-keys", json!({})).await;
    }

    /// Kills the provider: "the provider is down". Returns once its port refuses connections.
    pub(crate) fn stop(&mut self) {
        let _ = self.child.start_kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(Instant::now() < deadline, "the provider did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// An HTTP/1.1 request; `(status, body)`. Panics if nothing answers.
pub(crate) async fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    try_request(method, url, headers, body)
        .await
        .unwrap_or_else(|error| panic!("{method} {url}: {error}"))
}

async fn try_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<(u16, String), String> {
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .build::<_, Full<Bytes>>(HttpConnector::new());
    let mut builder = http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("request");
    let response = client
        .request(request)
        .await
        .map_err(|error| error.to_string())?;
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|error| error.to_string())?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

/// Signs in as `login` at the provider's own pages (login, then consent) in a real browser, from
/// wherever the browser is on its way to the provider, until it leaves the provider (the redirect
/// to the client). Any password works at the login page. If the provider never shows a page
/// within 5 s (an existing session and consent: it redirects at once), this returns.
pub(crate) async fn sign_in_at_provider(browser: &Client, login: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let patience = Instant::now() + Duration::from_secs(5);
    let mut seen_provider = false;
    loop {
        let url = browser.current_url().await.expect("current URL");
        if on_provider(&url.origin().ascii_serialization()) {
            seen_provider = true;
            fill_interaction(browser, login).await;
        } else if seen_provider || Instant::now() > patience {
            return;
        }
        if Instant::now() > deadline {
            stuck(browser, "sign_in_at_provider").await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The device flow at the provider: opens `verification_uri`, enters `user_code`, confirms the
/// device, signs in as `login`, consents, and waits for the provider's "Sign-in Success" page.
pub(crate) async fn approve_device_code(
    browser: &Client,
    verification_uri: &str,
    user_code: &str,
    login: &str,
) {
    browser.goto(verification_uri).await.expect("open /device");
    let input = find(
        browser,
        r#"form[id="op.deviceInputForm"] input[name="user_code"]"#,
    )
    .await;
    input.send_keys(user_code).await.expect("type the code");
    submit(
        browser,
        r#"button[type="submit"][form="op.deviceInputForm"]"#,
    )
    .await;
    // The confirmation page shows the code; Continue (the Abort button shares the form).
    submit(
        browser,
        r#"button[type="submit"][form="op.deviceConfirmForm"]:not([name="abort"])"#,
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        fill_interaction(browser, login).await;
        let source = browser.source().await.expect("page source");
        if source.contains("Sign-in Success") {
            return;
        }
        if Instant::now() > deadline {
            stuck(browser, "approve_device_code").await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether `origin` (`http://127.0.0.1:PORT`) is one of the providers'.
fn on_provider(origin: &str) -> bool {
    ORIGINS.lock().unwrap().iter().any(|known| known == origin)
}

/// On a dev-interaction page (`/interaction/UID`): fills and submits the login form or submits
/// the consent form, and waits for the next page. Does nothing elsewhere.
async fn fill_interaction(browser: &Client, login: &str) {
    let url = browser.current_url().await.expect("current URL");
    if !url.path().starts_with("/interaction/") {
        return;
    }
    let login_form = r#"form input[type="hidden"][name="prompt"][value="login"]"#;
    let consent_form = r#"form input[type="hidden"][name="prompt"][value="consent"]"#;
    if !present(browser, login_form).await.is_empty() {
        let name = find(browser, r#"input[name="login"]"#).await;
        name.clear().await.expect("clear login");
        name.send_keys(login).await.expect("type login");
        find(browser, r#"input[name="password"]"#)
            .await
            .send_keys("any password works")
            .await
            .expect("type password");
        submit(browser, r#"button[type="submit"].login-submit"#).await;
    } else if !present(browser, consent_form).await.is_empty() {
        submit(browser, r#"button[type="submit"].login-submit"#).await;
    }
}

/// The elements matching `css` now (no waiting).
async fn present(browser: &Client, css: &str) -> Vec<Element> {
    browser
        .find_all(Locator::Css(css))
        .await
        .expect("find elements")
}

/// The element matching `css`, waiting up to 10 s for it.
async fn find(browser: &Client, css: &str) -> Element {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(element) = present(browser, css).await.into_iter().next() {
            return element;
        }
        if Instant::now() > deadline {
            stuck(browser, &format!("no {css}")).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Clicks the button matching `css` and waits until the page it was on is gone.
async fn submit(browser: &Client, css: &str) {
    let button = find(browser, css).await;
    button.click().await.expect("click");
    let deadline = Instant::now() + Duration::from_secs(10);
    // A stale element: the browser left the page (the next one may have the same URL).
    while button.is_displayed().await.is_ok() {
        if Instant::now() > deadline {
            stuck(browser, &format!("clicking {css} did not leave the page")).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn stuck(browser: &Client, what: &str) -> ! {
    let url = browser.current_url().await.map(|url| url.to_string());
    let source = browser.source().await.unwrap_or_default();
    panic!("{what}: stuck at {url:?}; the page:\n{source}");
}

/// `text` percent-encoded for `application/x-www-form-urlencoded` (every byte but the unreserved).
pub(crate) fn form_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(byte).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// `key=value&…`, percent-encoded (`application/x-www-form-urlencoded`, also a query string).
pub(crate) fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(key, value)| format!("{}={}", form_encode(key), form_encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}
