//! A real headless Chromium driven through chromedriver (WebDriver): Debian's `chromium` and
//! `chromium-driver`, installed by `.ci/run`. One copy for the console's browser tests here and
//! the CLI's end-to-end console flow (`kms-pam-cli/tests/support/mod.rs` includes this file).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// chromedriver on a free port, killed on drop.
pub(crate) struct Driver {
    child: tokio::process::Child,
    port: u16,
    profiles: tempfile::TempDir,
}

impl Driver {
    pub(crate) async fn start() -> Self {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            listener.local_addr().expect("its address").port()
        };
        let child = tokio::process::Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver (apt-get install chromium chromium-driver)");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self {
            child,
            port,
            profiles: tempfile::tempdir().expect("profiles"),
        }
    }

    /// A new browser with its own profile.
    pub(crate) async fn browser(&self) -> Client {
        let profile = tempfile::tempdir_in(self.profiles.path())
            .expect("profile")
            .keep();
        let args = json!([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1280,900",
            format!("--user-data-dir={}", profile.display()),
        ]);
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": CHROMIUM, "args": args }),
        );
        ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("WebDriver session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// Saves a screenshot of the page as `target/console-screenshots/NAME.png`.
pub(crate) async fn shot(browser: &Client, name: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/console-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    let png = browser.screenshot().await.expect("screenshot");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
}

/// Asserts that no stored payload ran in the page.
pub(crate) async fn no_script_ran(browser: &Client) {
    assert_ne!(browser.title().await.expect("title"), "pwned");
    let pwned = browser
        .execute("return window.pwned === undefined;", vec![])
        .await
        .expect("execute");
    assert_eq!(pwned, json!(true), "a stored payload ran");
}
