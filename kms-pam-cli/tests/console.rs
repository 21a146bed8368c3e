//! The web console's sign-in from the real CLI binary (SPEC §8, issue 12): `kms-pam dev` prints
//! a one-time sign-in link when it starts, and `kms-pam console --no-browser` prints another;
//! each signs a browser in once (a 303 with the HttpOnly console cookie) and is refused after.

// Tests: a failed set-up panics with its reason.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

mod support;

use support::procs::{free_port, output_of};
use support::BIN;

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
