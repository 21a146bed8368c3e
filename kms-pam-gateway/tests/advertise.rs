//! Issue 15 point 8: the real `kms-pam-gateway` never advertises an unspecified address. With
//! `--listen 0.0.0.0:…` (the default) it needs `--advertise`, and refuses `--advertise 0.0.0.0:…`,
//! as usage errors (exit 2) before it contacts KMS or creates anything.

// Tests: a failed set-up panics with its reason.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::process::Output;

use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_kms-pam-gateway");

async fn gateway(data_dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(BIN)
        // Nothing listens on port 1: getting that far fails differently (exit 1).
        .args(["--kms-url", "http://127.0.0.1:1", "--name", "gw-1"])
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("KMS_PAM_ENROLL_TOKEN")
        .env_remove("KMS_PAM_URL")
        .output()
        .await
        .expect("run the gateway")
}

#[tokio::test]
async fn an_unspecified_listen_address_needs_advertise() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    for args in [
        &[][..],
        &["--listen", "0.0.0.0:0"][..],
        &["--listen", "[::]:0"][..],
        &["--listen", "127.0.0.1:0", "--advertise", "0.0.0.0:8443"][..],
        &["--listen", "0.0.0.0:0", "--advertise", "[::]:8443"][..],
    ] {
        let out = gateway(&data, args).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("--advertise") && stderr.contains("dial"),
            "{args:?}: {stderr}"
        );
        assert!(!data.exists(), "{args:?}: nothing created");
    }
}

#[tokio::test]
async fn a_routable_address_passes_the_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    for args in [
        &["--listen", "127.0.0.1:0"][..],
        &["--listen", "0.0.0.0:0", "--advertise", "gw1.internal:8443"][..],
    ] {
        let out = gateway(&data, args).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Past the check: it looks for its identity and finds none (no enrollment token).
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("holds no gateway identity"),
            "{args:?}: {stderr}"
        );
    }
}
