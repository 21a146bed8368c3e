//! The README's main command (`cargo run -p kms-pam-examples --example quickstart`), run as a
//! test: it must show the commands the session ran, read back from KMS right after the end.

#[allow(dead_code)] // its `main` is the example's entry point, not this test's
#[path = "../quickstart.rs"]
mod quickstart;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quickstart_prints_the_commands_kms_recorded() {
    let mut out = Vec::new();
    quickstart::quickstart(&mut out)
        .await
        .expect("the quickstart runs");
    let out = String::from_utf8(out).expect("text");
    let recorded = out
        .split_once("KMS recorded these commands:")
        .unwrap_or_else(|| panic!("no commands section:\n{out}"))
        .1;
    let get_pods = recorded
        .find("kubectl get pods")
        .unwrap_or_else(|| panic!("{out}"));
    let get_deployments = recorded
        .find("kubectl get deployments")
        .unwrap_or_else(|| panic!("{out}"));
    assert!(get_pods < get_deployments, "{out}");
    let listed: Vec<&str> = recorded
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("    "))
        .collect();
    assert_eq!(
        listed.len(),
        2,
        "kubectl's header-less first request is part of its command, not one of its own: {out}"
    );
    assert!(recorded.contains("Intact"), "the record verifies: {out}");
}
