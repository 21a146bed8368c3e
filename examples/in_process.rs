//! Run with: `cargo run -p kms-pam-examples --example in_process`
//!
//! The whole kms-pam path in one process on the embedded defaults: an API server double, a gateway
//! with in-memory session and credential stores, an in-memory tunnel and the HTTPS loopback proxy.
//! Runs the real kubectl through it (if installed; `$KUBECTL` overrides the path) and prints what
//! the gateway audited.

use kms_pam::audit::AuditEventKind;
use kms_pam_tests::harness::InProcessPath;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let path = InProcessPath::start().await;
    println!(
        "session {} for {}/{} (user {}), local proxy at {}",
        path.session.id,
        path.session.resource,
        path.session.account,
        path.session.user,
        path.local_url
    );
    println!("kubeconfig: {}", path.kubectl.kubeconfig_path().display());

    for args in [
        &["get", "pods"][..],
        &["get", "namespaces"],
        &["describe", "deployment", "nginx"],
    ] {
        println!("\n$ kubectl {}", args.join(" "));
        let out = path.kubectl.run(args).await;
        print!("{}", out.stdout_str());
        if !out.success() {
            eprint!("{}", out.stderr);
            anyhow::bail!("kubectl {} failed", args.join(" "));
        }
    }

    println!("\nAudited requests:");
    for event in path.audit.events() {
        match event.kind {
            AuditEventKind::RequestStarted(r) => println!(
                "  {:<16} {:<6} {:<8} {}",
                r.kubectl_command.as_deref().unwrap_or("-"),
                r.method,
                r.info.verb,
                r.path
            ),
            AuditEventKind::RequestFinished(f) => println!(
                "  {:<16} -> {} ({} bytes out, {} ms)",
                "", f.status, f.bytes_out, f.duration_ms
            ),
            _ => {}
        }
    }
    path.shutdown().await;
    Ok(())
}
