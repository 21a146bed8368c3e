//! The Helm charts, rendered by the real Helm engine: runs `tests/charts/check_charts.py` (a
//! matrix of values per chart, strict validation against the Kubernetes 1.30 schemas, the
//! refusals of bad values, the gateway's PVCs against their golden file) with the Python of
//! `$KMS_PAM_CHART_PYTHON`, else `target/chart-venv/bin/python`, which `.ci/chart-venv` makes.
//! Without either the test fails, saying so: it never skips.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Python the chart checks run with.
fn chart_python(root: &Path) -> PathBuf {
    if let Some(python) = std::env::var_os("KMS_PAM_CHART_PYTHON") {
        let python = PathBuf::from(python);
        assert!(
            python.exists(),
            "KMS_PAM_CHART_PYTHON={} does not exist; unset it, or run .ci/chart-venv and point \
             it at target/chart-venv/bin/python",
            python.display()
        );
        return python;
    }
    let venv = root.join("target/chart-venv/bin/python");
    assert!(
        venv.exists(),
        "the chart tests need the Helm engine and the Kubernetes schemas in a Python venv: run \
         .ci/chart-venv (it makes {}), or set KMS_PAM_CHART_PYTHON to a Python that has \
         tests/charts/requirements.txt installed",
        venv.display()
    );
    venv
}

#[test]
fn the_helm_charts_render_valid_manifests_and_refuse_bad_values() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lies in the workspace");
    let python = chart_python(root);
    let output = Command::new(&python)
        .arg(root.join("tests/charts/check_charts.py"))
        .current_dir(root)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the chart checks failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    // The script ran to its end: every case and refusal reported, none failed.
    let summary = stdout
        .lines()
        .find(|line| line.starts_with("charts: "))
        .unwrap_or_else(|| panic!("the chart checks printed no summary:\n{stdout}\n{stderr}"));
    assert!(summary.ends_with(" 0 failed"), "{summary}\n{stdout}");
    for case in [
        "gateway: defaults + token",
        "gateway: existing Secret",
        "gateway: 3 replicas",
        "gateway: relay mode",
        "gateway: direct mode",
        "server: SQLite, 1 replica",
        "server: PostgreSQL, 3 replicas, Ingress",
        "relay: defaults",
        "gateway: refuses no token and no existing Secret",
        "gateway: refuses persistence disabled with a token",
        "gateway: refuses no relays and direct mode off",
        "server: refuses 3 replicas on SQLite",
    ] {
        assert!(
            stdout.lines().any(|line| line == format!("ok   {case}")),
            "no passing check {case:?} in:\n{stdout}"
        );
    }
}
