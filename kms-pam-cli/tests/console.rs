//! The web console from the real CLI binary (docs/console.md, issue 12): `kms-pam dev` prints a one-time
//! sign-in link when it starts, and `kms-pam console --no-browser` prints another; each signs a
//! browser in once (a 303 with the HttpOnly console cookie) and is refused after. And the whole
//! "Done when" flow in a real headless Chromium against real processes (`kms-pam server`, the
//! `kms-pam-gateway` binary, the CLI, the real kubectl, the API server double): sign in through
//! the printed link, add a resource and an account through the forms, copy the Access command,
//! run it with kubectl, find the session by its command, read its commands, and terminate a
//! running `kubectl get pods -w` from the Sessions page.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

use crate::support::browser::{no_script_ran, shot, Driver};
use crate::support::procs::{free_port, output_of, Out};
use crate::support::world::{kill, kms_and_gateway, wait_until, World};
use crate::support::BIN;
use fantoccini::{Client, Locator};
use kms_pam_tests::apiserver::{nginx_pod_names, ApiServerDouble, DoubleConfig};

/// `GET url` over plain HTTP/1.1; the status line and headers of the answer.
async fn head_of(url: &str) -> String {
    let rest = url.strip_prefix("http://").expect("an http:// link");
    let (host, path) = rest.split_at(rest.find('/').expect("a path"));
    let mut stream = tokio::net::TcpStream::connect(host).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    answer
        .split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// The first `http://…/login/link/…` in `text`.
fn link_in(text: &str) -> String {
    text.split_whitespace()
        .find(|w| w.starts_with("http://") && w.contains("/login/link/"))
        .unwrap_or_else(|| panic!("no sign-in link in:\n{text}"))
        .to_owned()
}

/// The link signs in once: a redirect with the console cookie, then a refusal.
async fn signs_in_once(link: &str) {
    let first = head_of(link).await;
    assert!(first.starts_with("HTTP/1.1 303"), "{first}");
    let cookie = first
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"));
    let cookie = cookie.expect("a console cookie");
    assert!(
        cookie.contains("kms_console=") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    let again = head_of(link).await;
    assert!(
        again.starts_with("HTTP/1.1 401"),
        "links work once: {again}"
    );
}

#[tokio::test]
async fn dev_prints_a_sign_in_link_and_console_no_browser_prints_another() {
    let home = tempfile::tempdir().expect("home");
    let data = home.path().join("dev");
    let (kms_port, gateway_port) = (free_port().await, free_port().await);
    let kms = format!("127.0.0.1:{kms_port}");
    let mut dev = Command::new(BIN)
        .args(["dev", "--data-dir"])
        .arg(&data)
        .args([
            "--listen",
            &kms,
            "--gateway-listen",
            &format!("127.0.0.1:{gateway_port}"),
        ])
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env_remove("KMS_PAM_URL")
        .env_remove("KMS_PAM_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start kms-pam dev");
    let mut lines = BufReader::new(dev.stdout.take().expect("stdout")).lines();
    let mut banner = String::new();
    while !banner.contains("Press Ctrl+C") {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("the dev banner within 60 s")
            .expect("read");
        let Some(line) = line else { break };
        banner.push_str(&line);
        banner.push('\n');
    }
    assert!(banner.contains("Web console"), "{banner}");
    signs_in_once(&link_in(&banner)).await;

    let token = std::fs::read_to_string(data.join("admin.token")).expect("admin token");
    let mut console = Command::new(BIN);
    console
        .args(["console", "--no-browser", "--url", &format!("http://{kms}")])
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("KMS_PAM_TOKEN", token.trim())
        .env_remove("KMS_PAM_URL")
        .stdin(Stdio::null());
    let out = output_of(console, Duration::from_secs(30)).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        !out.stdout.contains(token.trim()),
        "the API token is not printed"
    );
    signs_in_once(&link_in(&out.stdout)).await;
    dev.kill().await.expect("stop dev");
}

/// The CLI as the engineer runs it, in the world's home: URL and token from `kms-pam login`'s
/// config, not from the environment.
fn engineer(world: &World, args: &[&str]) -> Command {
    let home = world.home.path();
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env_remove("KMS_PAM_URL")
        .env_remove("KMS_PAM_TOKEN")
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Runs `kubectl ARGS` with the session's kubeconfig.
async fn kubectl(home: &std::path::Path, kubeconfig: &str, args: &[&str]) -> Out {
    let mut command = Command::new("kubectl");
    command
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", home)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = output_of(command, Duration::from_secs(60)).await;
    assert_eq!(
        out.code,
        Some(0),
        "kubectl {}:\n{}{}",
        args.join(" "),
        out.stdout,
        out.stderr
    );
    out
}

/// Clicks the element at `css`.
async fn click(browser: &Client, css: &str) {
    browser
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

/// Types `text` into the field at `css`, replacing what it held.
async fn fill(browser: &Client, css: &str, text: &str) {
    let field = browser
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"));
    field.clear().await.expect("clear");
    field.send_keys(text).await.expect("type");
}

/// The text of every element at `css`.
async fn texts(browser: &Client, css: &str) -> Vec<String> {
    let mut out = Vec::new();
    for element in browser.find_all(Locator::Css(css)).await.expect("find") {
        out.push(element.text().await.expect("text"));
    }
    out
}

/// The rows of the Sessions page at `url` once `ready` holds for them (events reach KMS from
/// the gateway in the background), reloading meanwhile.
async fn rows_when(browser: &Client, url: &str, ready: impl Fn(&[String]) -> bool) -> Vec<String> {
    let mut rows = Vec::new();
    for _ in 0..60 {
        browser.goto(url).await.expect("goto");
        rows = texts(browser, "tbody tr").await;
        if ready(&rows) {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("the Sessions page at {url} never got there; it shows {rows:?}");
}

/// The first stdout line of `child` that contains `marker` (within 60 s); the lines read before
/// it go to `seen`.
async fn line_with(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    marker: &str,
    seen: &mut String,
) -> String {
    loop {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("no {marker:?} within 60 s; printed:\n{seen}"))
            .expect("read stdout")
            .unwrap_or_else(|| panic!("stdout ended before {marker:?}; printed:\n{seen}"));
        seen.push_str(&line);
        seen.push('\n');
        if line.contains(marker) {
            return line;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_flow_in_a_real_browser_with_the_cli_kubectl_and_gateway() {
    let double = ApiServerDouble::start(DoubleConfig::default())
        .await
        .expect("double");
    let (world, mut server, mut gateway) = kms_and_gateway().await;
    let pod = nginx_pod_names().remove(0);

    // The engineer signs the CLI in, then asks it for a console link.
    let login = engineer(
        &world,
        &["login", "--url", &world.url, "--token", &world.admin],
    );
    let login = output_of(login, Duration::from_secs(30)).await;
    assert_eq!(login.code, Some(0), "{}", login.stderr);
    let console = engineer(&world, &["console", "--no-browser"]);
    let console = output_of(console, Duration::from_secs(30)).await;
    assert_eq!(console.code, Some(0), "{}", console.stderr);
    assert!(
        !console.stdout.contains(&world.admin),
        "the API token is not printed"
    );
    let link = link_in(&console.stdout);

    let driver = Driver::start().await;
    let browser = driver.browser().await;
    browser.goto(&link).await.expect("open the link");
    let landed = browser.current_url().await.expect("url");
    assert!(landed.path().ends_with("/p/default/sessions"), "{landed}");
    let base = world.url.clone();

    // Add resource: the API double's URL, gateway gw1, SSL verified against its CA.
    browser
        .goto(&format!("{base}/p/default/resources"))
        .await
        .expect("resources");
    let field = |name: &str| format!("form[action='/p/default/resources'] [name={name}]");
    fill(&browser, &field("name"), "staging").await;
    fill(&browser, &field("url"), &double.url()).await;
    browser
        .find(Locator::Css(&field("gateway")))
        .await
        .expect("gateway select")
        .select_by_value("gw1")
        .await
        .expect("select gw1");
    let verify = browser
        .execute(
            "return document.querySelector(arguments[0]).checked;",
            vec![serde_json::json!(field("ssl_verify"))],
        )
        .await
        .expect("the verify-SSL switch");
    assert_eq!(
        verify,
        serde_json::json!(true),
        "SSL verification is on by default"
    );
    fill(&browser, &field("ca_cert"), double.ca_pem()).await;
    shot(&browser, "flow-add-resource").await;
    click(
        &browser,
        "form[action='/p/default/resources'] button[type=submit]",
    )
    .await;

    // Its page: Add account with the service-account token.
    let accounts = "/p/default/resources/staging/accounts";
    let field = |name: &str| format!("form[action='{accounts}'] [name={name}]");
    fill(&browser, &field("name"), "ops").await;
    fill(&browser, &field("description"), "on-call operators").await;
    fill(&browser, &field("token"), double.token()).await;
    fill(&browser, &field("max_duration"), "2h").await;
    click(
        &browser,
        &format!("form[action='{accounts}'] button[type=submit]"),
    )
    .await;

    // Its Edit form: the token field is blank, "token unchanged", never filled in.
    click(&browser, "#account-0 a[href$='/accounts/ops']").await;
    let token = browser
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("input[name=token]"))
        .await
        .expect("the edit form");
    assert_eq!(
        token
            .attr("placeholder")
            .await
            .expect("placeholder")
            .as_deref(),
        Some("token unchanged")
    );
    assert_eq!(
        token.prop("value").await.expect("value").as_deref(),
        Some("")
    );
    assert!(!browser
        .source()
        .await
        .expect("source")
        .contains(double.token()));
    shot(&browser, "flow-edit-account").await;
    click(
        &browser,
        "form[action$='/accounts/ops'] button[type=submit]",
    )
    .await;

    // Access: the command to copy.
    click(&browser, "#account-0 details summary").await;
    let copied = browser
        .find(Locator::Css("#access-0"))
        .await
        .expect("the Access command")
        .text()
        .await
        .expect("text");
    assert_eq!(
        copied,
        format!("kms-pam --url {base} pam access staging/ops --project default --duration 2h")
    );
    assert!(
        !browser
            .source()
            .await
            .expect("source")
            .contains(double.token()),
        "the token is never rendered"
    );
    shot(&browser, "flow-access").await;

    // Run the copied command as it is, then kubectl with the kubeconfig it names.
    let words: Vec<&str> = copied.split_whitespace().collect();
    assert_eq!(words[0], "kms-pam");
    let mut access = engineer(&world, &words[1..])
        .spawn()
        .expect("run the copied command");
    let mut stdout = BufReader::new(access.stdout.take().expect("stdout")).lines();
    let mut banner = String::new();
    let opened = line_with(&mut stdout, "Session ", &mut banner).await;
    let id = opened
        .split_whitespace()
        .nth(1)
        .expect("the session id")
        .to_owned();
    let export = line_with(&mut stdout, "export KUBECONFIG=", &mut banner).await;
    let kubeconfig = export
        .trim()
        .strip_prefix("export KUBECONFIG=")
        .expect("a path")
        .to_owned();
    line_with(&mut stdout, "Press Ctrl+C", &mut banner).await;
    let pods = kubectl(world.home.path(), &kubeconfig, &["get", "pods"]).await;
    assert!(pods.stdout.contains(&pod), "{}", pods.stdout);
    let described = kubectl(world.home.path(), &kubeconfig, &["describe", "pod", &pod]).await;
    assert!(described.stdout.contains(&pod), "{}", described.stdout);
    let exec = kubectl(
        world.home.path(),
        &kubeconfig,
        &["exec", &pod, "--", "echo", "hello-from-exec"],
    )
    .await;
    assert!(exec.stdout.contains("hello-from-exec"), "{}", exec.stdout);

    // End it as its banner says: Ctrl+C.
    let pid = access.id().expect("pid").to_string();
    let sent = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill -INT");
    assert!(sent.success());
    let ended = tokio::time::timeout(Duration::from_secs(30), access.wait_with_output())
        .await
        .expect("pam access ended after Ctrl+C")
        .expect("wait");
    let stderr = String::from_utf8_lossy(&ended.stderr);
    assert_eq!(ended.status.code(), Some(0), "{banner}{stderr}");
    assert!(stderr.contains(&format!("Session {id} ended")), "{stderr}");

    // The Sessions page: searching for the command finds exactly this session.
    let search = format!("{base}/p/default/sessions?q=kubectl+describe");
    browser
        .goto(&format!("{base}/p/default/sessions"))
        .await
        .expect("sessions");
    fill(&browser, "input[name=q]", "kubectl describe").await;
    click(&browser, "form.filters button").await;
    wait_until("the search to be submitted", || {
        let browser = browser.clone();
        async move {
            let url = browser.current_url().await.expect("url");
            url.query().is_some_and(|q| q.contains("q=kubectl"))
        }
    })
    .await;
    let rows = rows_when(&browser, &search, |rows| rows.len() == 1).await;
    assert!(rows[0].contains("staging/ops"), "{rows:?}");
    assert!(rows[0].contains("ended"), "{rows:?}");
    shot(&browser, "flow-search").await;
    let opened = browser
        .find(Locator::Css("tbody tr td a"))
        .await
        .expect("the session's link");
    let href = opened.attr("href").await.expect("href").unwrap_or_default();
    // A session's URL ends with its id as it is (hyphens are not percent-encoded).
    assert!(href.ends_with(&id), "{href} is not session {id}");
    opened.click().await.expect("open the session");

    // Each kubectl command is a row; the exec's output is in its recording.
    let wanted = ["kubectl get", "kubectl describe", "kubectl exec"];
    let mut commands = Vec::new();
    let mut page = String::new();
    for _ in 0..60 {
        commands = texts(&browser, "details summary code").await;
        page = browser.source().await.expect("source");
        let all = wanted
            .iter()
            .all(|w| commands.iter().any(|c| c.starts_with(w)));
        if all && page.contains("hello-from-exec") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        browser.refresh().await.expect("reload");
    }
    for w in wanted {
        assert!(
            commands.iter().any(|c| c.starts_with(w)),
            "{w} not on the session page: {commands:?}"
        );
    }
    assert!(page.contains("hello-from-exec"), "the exec's recording");
    // Where it was requested from: the CLI, from this machine.
    assert!(
        page.contains("Client address</dt><dd class=\"mono\">127.0.0.1</dd>"),
        "the client address"
    );
    let agent = concat!(
        "User agent</dt><dd class=\"mono\">kms-pam/",
        env!("CARGO_PKG_VERSION")
    );
    assert!(page.contains(agent), "the CLI's user agent");
    assert!(page.contains(&id));
    // console.js fetches the audit chain check into the page.
    let verdict = browser
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css("#chain .badge"))
        .await
        .expect("the chain verdict in the page");
    assert_eq!(verdict.text().await.expect("text"), "intact");
    no_script_ran(&browser).await;
    shot(&browser, "flow-session").await;

    // Another session runs `kubectl get pods -w`; the admin terminates it from the page.
    let mut watch_args: Vec<&str> = words[1..].to_vec();
    watch_args.extend(["--", "kubectl", "get", "pods", "-w"]);
    let watch = engineer(&world, &watch_args)
        .spawn()
        .expect("start the watch");
    wait_until("the watch to reach the cluster", || {
        let open = double.open_streams();
        async move { open > 0 }
    })
    .await;
    let active = format!("{base}/p/default/sessions?status=active");
    let rows = rows_when(&browser, &active, |rows| rows.len() == 1).await;
    assert!(rows[0].contains("active"), "{rows:?}");
    click(&browser, "tbody tr a.button").await;
    browser
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("button.danger"))
        .await
        .expect("the confirmation step");
    assert_eq!(browser.title().await.expect("title"), "Terminate · kms-pam");
    click(&browser, "button.danger").await;
    let badge = browser
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("h1 .badge.terminated"))
        .await
        .expect("the terminated session's page");
    assert_eq!(badge.text().await.expect("text"), "terminated");
    shot(&browser, "flow-terminated").await;
    let watched = tokio::time::timeout(Duration::from_secs(15), watch.wait_with_output())
        .await
        .expect("the watch was cut after the termination")
        .expect("wait");
    let stderr = String::from_utf8_lossy(&watched.stderr);
    assert_ne!(watched.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("terminated"), "{stderr}");
    wait_until("the cluster-side watch to close", || {
        let open = double.open_streams();
        async move { open == 0 }
    })
    .await;

    browser.close().await.expect("close");
    kill(&mut gateway).await;
    kill(&mut server).await;
    double.shutdown().await;
}
