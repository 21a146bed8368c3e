//! Shared by the CLI tests: a fake KMS speaking plain HTTP/1.1 on a thread, and helpers to run
//! the built binary in a private home directory.

// The chromedriver helper is the console tests' own (one copy for both crates).
#[path = "../../../kms-pam/src/server/tests/console/driver.rs"]
pub(crate) mod browser;
pub(crate) mod oidc;
pub(crate) mod org;
pub(crate) mod pg;
pub(crate) mod procs;
pub(crate) mod world;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

/// The binary under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_kms-pam");

/// One request as the fake KMS saw it.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    /// `METHOD target authorization` (`-` without authorization).
    pub line: String,
    /// The body.
    pub body: String,
}

type Handler = dyn Fn(&str, &str, &str) -> (u16, String) + Send + Sync;

/// A fake KMS answering each request with `handler(method, path, body)`; query strings are not
/// passed to the handler but are recorded.
pub(crate) struct FakeKms {
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl FakeKms {
    /// Serves `handler` on a free port.
    pub(crate) fn start(
        handler: impl Fn(&str, &str, &str) -> (u16, String) + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let handler: Arc<Handler> = Arc::new(handler);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (log, handler) = (log.clone(), handler.clone());
                std::thread::spawn(move || answer(stream, &*handler, &log));
            }
        });
        Self { url, seen }
    }

    /// Answers from a table of `("METHOD /path", status, body)`; 404 `not_found` otherwise.
    pub(crate) fn routes(routes: Vec<(&'static str, u16, String)>) -> Self {
        Self::start(move |method, path, _| {
            let key = format!("{method} {path}");
            routes
                .iter()
                .find(|(route, _, _)| *route == key)
                .map_or_else(not_found, |(_, status, body)| (*status, body.clone()))
        })
    }

    /// The request lines seen so far.
    pub(crate) fn seen(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.line.clone())
            .collect()
    }

    /// The request bodies seen so far.
    pub(crate) fn bodies(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.body.clone())
            .collect()
    }
}

/// `404 {"error":{"code":"not_found",...}}`.
pub(crate) fn not_found() -> (u16, String) {
    (
        404,
        r#"{"error":{"code":"not_found","message":"no such thing"}}"#.to_owned(),
    )
}

fn answer(stream: TcpStream, handler: &Handler, log: &Mutex<Vec<Seen>>) {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() || request_line.is_empty() {
        return;
    }
    let (mut length, mut authorization) = (0usize, String::from("-"));
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).unwrap();
        if header.trim().is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').unwrap();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().unwrap(),
            "authorization" => authorization = value.trim().to_owned(),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    let body = String::from_utf8(body).unwrap();
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap(), parts.next().unwrap());
    log.lock().unwrap().push(Seen {
        line: format!("{method} {target} {authorization}"),
        body: body.clone(),
    });
    let path = target.split('?').next().unwrap();
    let (status, answer) = handler(method, path, &body);
    let response = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{answer}",
        answer.len()
    );
    let _ = reader.into_inner().write_all(response.as_bytes());
}

/// The binary, with a private HOME and config directory and no KMS settings from outside.
pub(crate) fn command(home: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env_remove("KMS_PAM_URL")
        .env_remove("KMS_PAM_TOKEN")
        .env_remove("KMS_PAM_PROJECT")
        .env_remove("KUBECONFIG")
        .env_remove("RUST_LOG")
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"));
    command
}

/// Runs the binary to completion.
pub(crate) fn kms_pam(home: &Path, args: &[&str]) -> Output {
    command(home, args).output().unwrap()
}

/// Runs the binary to completion with `input` on its standard input (a pipe, not a terminal).
pub(crate) fn kms_pam_with_stdin(home: &Path, args: &[&str], input: &str) -> Output {
    let mut child = command(home, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Dropped after writing: the child sees the end of its input.
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

pub(crate) fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub(crate) fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// An error: exit 1, one `error: ` line, no panic.
pub(crate) fn assert_one_line_error(output: &Output, expected: &str) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(1), "stderr: {err}");
    assert!(err.starts_with("error: "), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(expected), "expected {expected:?} in {err:?}");
}

/// A URL where nothing listens.
pub(crate) fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}
