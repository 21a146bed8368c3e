//! Real-process helpers shared by the flow and tracking tests.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::Command;

/// The gateway binary, built beside the CLI by `cargo test --workspace`.
pub(crate) fn gateway_bin() -> PathBuf {
    let path = Path::new(super::BIN).with_file_name("kms-pam-gateway");
    assert!(
        path.exists(),
        "{} is missing: build it first (cargo test --workspace builds every binary)",
        path.display()
    );
    path
}

/// A port free right now on 127.0.0.1.
pub(crate) async fn free_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    listener.local_addr().expect("addr").port()
}

/// What a finished CLI run printed.
pub(crate) struct Out {
    /// Exit code.
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs `command` to the end within `limit`.
pub(crate) async fn output_of(mut command: Command, limit: Duration) -> Out {
    let output = tokio::time::timeout(limit, command.output())
        .await
        .expect("kms-pam finished in time")
        .expect("run kms-pam");
    Out {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}
