//! Single sign-on end to end: `kms-pam server`, the gateway and the CLI as processes, a real
//! OpenID provider (the npm `oidc-provider`, `support::oidc`), a real headless Chromium at the
//! provider's pages, and the real kubectl through the session.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, Locator};
use kms_pam_tests::apiserver::{ApiServerDouble, DoubleConfig};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::support::browser::Driver;
use crate::support::oidc::{
    approve_device_code, sign_in_at_provider, OidcClient, OidcProvider, OidcUser,
};
use crate::support::procs::{output_of, Out};
use crate::support::world::{wait_until, world, World};
use crate::support::BIN as CLI;

const CLIENT: &str = "kms-pam";

/// A provider whose client is this KMS, with `users`; registered in KMS as `corp` with group
/// rules `k8s-users=default:member` and `k8s-auditors=default:auditor`.
async fn provider_for(world: &World, users: Vec<OidcUser>) -> OidcProvider {
    let callback = format!("{}/login/sso/callback", world.url);
    let client = OidcClient::new(CLIENT, "client-secret-1", &[&callback]);
    let provider = OidcProvider::start(vec![client], users).await;
    let secret = world.home.path().join("client-secret");
    std::fs::write(&secret, "client-secret-1\n").unwrap();
    let issuer = provider.issuer();
    world
        .ok(&[
            "sso",
            "provider",
            "create",
            "corp",
            "--issuer",
            &issuer,
            "--client-id",
            CLIENT,
            "--client-secret-file",
            secret.to_str().unwrap(),
            "--map",
            "k8s-users=default:member",
            "--map",
            "k8s-auditors=default:auditor",
            "--credential-ttl",
            "1h",
        ])
        .await;
    provider
}

/// The CLI as a person without an API token: their own home (login file), the KMS URL only.
fn person(world: &World, home: &Path, args: &[&str]) -> Command {
    std::fs::create_dir_all(home).unwrap();
    let mut command = Command::new(CLI);
    command
        .args(args)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("KMS_PAM_URL", &world.url)
        .env_remove("KMS_PAM_TOKEN")
        .env_remove("KMS_PAM_KMS_CA")
        .env_remove("KUBECONFIG")
        .env("BROWSER", "true")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

async fn person_run(world: &World, home: &Path, args: &[&str]) -> Out {
    output_of(person(world, home, args), Duration::from_secs(60)).await
}

/// Runs `login --sso ARGS` and hands its first stderr line starting with `prefix` to `act` (the
/// browser's part), then waits for the login to finish.
async fn login_with<F, Fut>(world: &World, home: &Path, args: &[&str], prefix: &str, act: F) -> Out
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut command = person(world, home, &[&["login", "--sso"][..], args].concat());
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("start login --sso");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let line = loop {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("login --sso printed its instructions")
            .unwrap()
            .unwrap_or_else(|| panic!("login --sso ended early: {seen:?}"));
        if line.starts_with(prefix) {
            break line;
        }
        seen.push(line);
    };
    act(line).await;
    let rest = tokio::spawn(async move {
        let mut rest = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            rest.push(line);
        }
        rest.join("\n")
    });
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("login --sso finished")
        .unwrap();
    Out {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: rest.await.unwrap(),
    }
}

/// The output of a `pam access` that must end within 30 s (killed and shown if it does not).
async fn ended_output(mut child: tokio::process::Child) -> (String, String) {
    use tokio::io::AsyncReadExt;
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let read = tokio::spawn(async move {
        let (mut o, mut e) = (String::new(), String::new());
        let _ = tokio::join!(out.read_to_string(&mut o), err.read_to_string(&mut e));
        (o, e)
    });
    let ended = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
    if ended.is_err() {
        let _ = child.start_kill();
    }
    let (stdout, stderr) = read.await.unwrap();
    assert!(ended.is_ok(), "pam access did not end:\n{stdout}\n{stderr}");
    (stdout, stderr)
}

async fn find_text(browser: &Client, css: &str) -> String {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .unwrap()
}

async fn wait_for_path(browser: &Client, path: &str) {
    for _ in 0..200 {
        let url = browser.current_url().await.unwrap();
        if url.path() == path {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let url = browser.current_url().await.unwrap();
    let body = browser.source().await.unwrap_or_default();
    panic!("browser at {url}, not {path}: {body}");
}

#[tokio::test]
async fn the_console_signs_in_through_the_provider_with_the_role_the_groups_give() {
    let double = ApiServerDouble::start(DoubleConfig::default())
        .await
        .unwrap();
    let (world, _kms, _gateway) = world(&double).await;
    let mut provider = provider_for(&world, vec![OidcUser::new("carol", &["k8s-auditors"])]).await;
    let driver = Driver::start().await;
    let browser = driver.browser().await;

    browser.goto(&format!("{}/login", world.url)).await.unwrap();
    let button = find_text(&browser, r#"a.sso[data-provider="corp"]"#).await;
    assert_eq!(button, "Sign in with corp");
    browser
        .find(Locator::Css(r#"a.sso[data-provider="corp"]"#))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    sign_in_at_provider(&browser, "carol").await;
    wait_for_path(&browser, "/p/default/sessions").await;
    // Signed in as the user the provider named, an auditor of `default`: the Members tab (for
    // administrators and auditors) shows, the Gateways tab (organisation administrators) not.
    assert!(find_text(&browser, "div.who span")
        .await
        .starts_with("carol"));
    let nav = find_text(&browser, "header nav").await;
    assert!(
        nav.contains("Members") && !nav.contains("Gateways"),
        "{nav}"
    );
    let members = world
        .json(&["project", "member", "list", "default", "-o", "json"])
        .await;
    let carol = members
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user"] == "carol")
        .unwrap_or_else(|| panic!("carol is no member: {members}"));
    assert_eq!(carol["role"], "auditor");

    // A callback whose state KMS never issued (or already spent) creates nothing.
    let users_before = world.ok(&["user", "list", "-o", "json"]).await;
    browser
        .goto(&format!(
            "{}/login/sso/callback?code=forged&state=forged",
            world.url
        ))
        .await
        .unwrap();
    let page = find_text(&browser, "p.field-error").await;
    assert!(
        page.contains("unknown, expired or already finished"),
        "{page}"
    );
    assert_eq!(
        world.ok(&["user", "list", "-o", "json"]).await,
        users_before
    );

    // The provider down: the sign-in page says so; KMS itself keeps working.
    provider.stop();
    browser
        .goto(&format!("{}/login/sso/corp", world.url))
        .await
        .unwrap();
    let page = find_text(&browser, "p.field-error").await;
    assert!(page.contains("unreachable"), "{page}");
    world.ok(&["whoami"]).await;
}

/// The CLI's browser sign-in, a session that names the person, and the group taken away at the
/// provider cutting that session at the next refresh.
#[tokio::test]
async fn the_cli_signs_in_by_loopback_and_losing_the_group_cuts_the_session() {
    let double = ApiServerDouble::start(DoubleConfig::default())
        .await
        .unwrap();
    let (world, _kms, _gateway) = world(&double).await;
    let provider = provider_for(&world, vec![OidcUser::new("alice", &["k8s-users"])]).await;
    let driver = Driver::start().await;
    let browser = driver.browser().await;
    let home: PathBuf = world.home.path().join("alice");

    let out = login_with(&world, &home, &[], "Sign in at: ", |line| {
        let url = line.trim_start_matches("Sign in at: ").to_owned();
        let browser = &browser;
        async move {
            browser.goto(&url).await.unwrap();
            sign_in_at_provider(browser, "alice").await;
        }
    })
    .await;
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("as alice through corp"),
        "{}",
        out.stdout
    );
    let stored = std::fs::read_to_string(home.join(".config/kms-pam/config.json")).unwrap();
    assert!(
        stored.contains("kmss_") && stored.contains("kmsr_"),
        "{stored}"
    );
    let me = person_run(&world, &home, &["whoami", "-o", "json"]).await;
    let me: Value =
        serde_json::from_str(&me.stdout).unwrap_or_else(|e| panic!("{e}: {}", me.stderr));
    assert_eq!(me["identity"]["email"], "alice@example.com");
    assert_eq!(me["identity"]["issuer"], provider.issuer());

    // A member needs a grant; the session then records who the person is.
    world
        .ok(&["pam", "grant", "create", "prod/admin", "--user", "alice"])
        .await;
    let mut access = person(
        &world,
        &home,
        &[
            "pam",
            "access",
            "prod/admin",
            "--duration",
            "10m",
            "--",
            "sh",
            "-c",
            "kubectl get pods -n default >/dev/null && echo listed && sleep 60",
        ],
    );
    access.stdout(Stdio::piped()).stderr(Stdio::piped());
    let access = access.spawn().unwrap();
    let id = crate::support::world::active_session(&world).await;
    let session = world.show(&id).await;
    assert_eq!(session["user"], "alice", "{session}");
    assert_eq!(session["identity"]["email"], "alice@example.com");
    assert_eq!(session["identity"]["subject"], "alice");
    let shown = world.ok(&["pam", "sessions", "show", &id]).await;
    assert!(
        shown.contains(&format!(
            "Person:   alice@example.com (alice at {})",
            provider.issuer()
        )),
        "{shown}"
    );

    // kubectl went through the session (its command is recorded) before anything changes.
    wait_until("kubectl's command to be recorded", || async {
        !world.commands(&id).await.is_empty()
    })
    .await;

    // The group goes at the provider; the next refresh takes the membership away and the
    // session ends.
    provider.set_groups("alice", &[]).await;
    let refreshed = person_run(&world, &home, &["login", "--refresh"]).await;
    assert_eq!(refreshed.code, Some(0), "{}", refreshed.stderr);
    wait_until("the session to end", || async {
        world.show(&id).await["status"] != "active"
    })
    .await;
    let ended = world.show(&id).await;
    assert_eq!(ended["end_cause"], "membership_removed", "{ended}");
    // `pam access` learns the end and cuts its command.
    let (stdout, stderr) = ended_output(access).await;
    assert!(stdout.contains("listed"), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("you were removed from the project"),
        "{stderr}"
    );
    let members = world
        .ok(&["project", "member", "list", "default", "-o", "json"])
        .await;
    assert!(!members.contains("\"alice\""), "{members}");

    // The gateway signed who the person is into the session's record, and it verifies.
    let mut verified = None;
    for _ in 0..100 {
        let out = world.run(&["pam", "sessions", "verify", &id]).await;
        if out.code == Some(0) {
            verified = None;
            break;
        }
        verified = Some(format!("{}\n{}", out.stdout, out.stderr));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        verified.is_none(),
        "the record does not verify: {verified:?}"
    );
    let bundle = world.home.path().join("bundle.json");
    world
        .ok(&[
            "pam",
            "sessions",
            "export",
            &id,
            "--out",
            bundle.to_str().unwrap(),
        ])
        .await;
    let bundle: Value = serde_json::from_str(&std::fs::read_to_string(&bundle).unwrap()).unwrap();
    let started = bundle["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "session_started")
        .unwrap_or_else(|| panic!("no session_started: {bundle}"));
    assert_eq!(
        started["binding"]["identity"]["email"], "alice@example.com",
        "{started}"
    );
}

/// The device flow for a machine without a browser, and a person disabled at the provider.
#[tokio::test]
async fn the_cli_signs_in_by_device_code_and_a_disabled_person_cannot_refresh() {
    let double = ApiServerDouble::start(DoubleConfig::default())
        .await
        .unwrap();
    let (world, _kms, _gateway) = world(&double).await;
    let provider = provider_for(&world, vec![OidcUser::new("dave", &["k8s-users"])]).await;
    let driver = Driver::start().await;
    let browser = driver.browser().await;
    let home = world.home.path().join("dave");

    let out = login_with(
        &world,
        &home,
        &["--no-browser"],
        "To sign in, open ",
        |line| {
            // "To sign in, open URI and enter the code CODE"
            let rest = line.trim_start_matches("To sign in, open ");
            let (uri, code) = rest.split_once(" and enter the code ").unwrap();
            let (uri, code) = (uri.to_owned(), code.trim().to_owned());
            let browser = &browser;
            async move { approve_device_code(browser, &uri, &code, "dave").await }
        },
    )
    .await;
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    let me = person_run(&world, &home, &["whoami"]).await;
    assert!(
        me.stdout.contains("dave@example.com"),
        "{}\n{}",
        me.stdout,
        me.stderr
    );

    provider.disable_user("dave").await;
    let refused = person_run(&world, &home, &["login", "--refresh"]).await;
    assert_eq!(refused.code, Some(1), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("single sign-on ended") && refused.stderr.contains("sign in again"),
        "{}",
        refused.stderr
    );
    // The credential was revoked with it: the stored access token no longer works either.
    let me = person_run(&world, &home, &["whoami"]).await;
    assert_ne!(me.code, Some(0), "{}\n{}", me.stdout, me.stderr);
}
