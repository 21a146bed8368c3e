//! Run with `cargo bench -p kms-pam-benches --bench console_pages`.
//!
//! The web console's two heavy pages against a real KMS (SQLite store, in-process on
//! 127.0.0.1:0): the Sessions page (first page, and a search that matches recorded kubectl
//! commands) with 10,000 sessions in the store, and the page of one session holding 5,000
//! kubectl commands. Goal (issue 12): each under 100 ms. Prints median and p95 of
//! `CONSOLE_BENCH_RUNS` (default 30) requests per page, and of the session's chain check, which
//! the session page fetches after it is shown.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use kms_pam::audit::{
    AuditEvent, AuditEventKind, AuditSink, ChainingSink, MemoryAuditSink, RequestFinished,
    RequestStarted,
};
use kms_pam::kms::api::CreateSession;
use kms_pam::kms::client::KmsClient;
use kms_pam::kube::RequestInfo;
use kms_pam::server::{Server, ServerConfig};
use kms_pam::tls::generate_csr;
use kms_pam::Secret;

const SESSIONS: usize = 10_000;
const COMMANDS: u64 = 5_000;
const GOAL: Duration = Duration::from_millis(100);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let runs: usize = std::env::var("CONSOLE_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let dir = tempfile::tempdir()?;
    let server = Server::open(ServerConfig::new(dir.path().join("data"))).await?;
    let token = std::fs::read_to_string(server.admin_token_path())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve(listener, async {
        let _ = stopped.await;
    }));
    let admin = KmsClient::new(&url, Some(Secret::new(token.trim())))?;

    let audit_key =
        std::sync::Arc::new(kms_pam::audit::evidence::signing::SigningKey::generate()?.0);
    let gateway = kms_pam_benches::kms::seed_world(&admin, &url, &audit_key).await?;
    let started = Instant::now();
    let mut last = None;
    for i in 0..SESSIONS {
        let (_key, csr) = generate_csr("bench")?;
        let created = admin
            .sessions()
            .create(&CreateSession {
                resource: "prod".into(),
                account: "admin".into(),
                duration_secs: 600,
                reason: Some(format!("bench session {i}")),
                csr,
            })
            .await?;
        let id = created.session.session.id;
        if i + 1 < SESSIONS {
            admin.sessions().end(&id).await?;
        }
        last = Some(id);
    }
    let heavy = last.context("no session")?;
    eprintln!("seeded {SESSIONS} sessions in {:?}", started.elapsed());
    for batch in commands(heavy.as_str(), &audit_key).chunks(4_000) {
        gateway.gateway().upload_events(batch).await?;
    }
    eprintln!("seeded {COMMANDS} commands in one session");

    let cookie = sign_in(&admin).await?;
    let client: Client<HttpConnector, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let pages = [
        ("sessions page", "/p/default/sessions".to_owned()),
        (
            "sessions search",
            "/p/default/sessions?q=rollout".to_owned(),
        ),
        // Matches nothing: every session's events are searched.
        (
            "sessions search, no match",
            "/p/default/sessions?q=no-such-command".to_owned(),
        ),
        (
            "session (5,000 commands)",
            format!("/p/default/sessions/{}", heavy.as_str()),
        ),
        (
            "session, last page",
            format!("/p/default/sessions/{}?page=25", heavy.as_str()),
        ),
        // Not a page: the chain check the session page fetches after it is shown (10,000
        // signatures), reported for what it costs.
        (
            "its chain check (/verify)",
            format!("/p/default/sessions/{}/verify", heavy.as_str()),
        ),
    ];
    println!(
        "{:<28} {:>10} {:>10}  goal {GOAL:?}",
        "page", "median", "p95"
    );
    for (name, path) in pages {
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            let request = http::Request::get(format!("{url}{path}"))
                .header("cookie", format!("kms_console={cookie}"))
                .body(Empty::new())?;
            let begun = Instant::now();
            let answer = client.request(request).await?;
            let status = answer.status();
            let body = answer.into_body().collect().await?.to_bytes();
            times.push(begun.elapsed());
            anyhow::ensure!(status.is_success(), "{name}: {status}");
            anyhow::ensure!(!body.is_empty(), "{name}: empty page");
        }
        times.sort();
        let median = times[times.len() / 2];
        let p95 = times[(times.len() * 95 / 100).min(times.len() - 1)];
        let verdict = match (path.ends_with("/verify"), p95 < GOAL) {
            (true, _) => "(not a page)",
            (false, true) => "ok",
            (false, false) => "OVER",
        };
        println!("{name:<28} {median:>10.1?} {p95:>10.1?}  {verdict}");
    }
    let _ = stop.send(());
    serving.await??;
    Ok(())
}

/// `COMMANDS` kubectl invocations of one request each, chained for `session` and signed with
/// the gateway's audit key.
fn commands(
    session: &str,
    audit_key: &std::sync::Arc<kms_pam::audit::evidence::signing::SigningKey>,
) -> Vec<AuditEvent> {
    let chained = ChainingSink::new(MemoryAuditSink::new()).with_signer(audit_key.clone());
    let path = "/api/v1/namespaces/default/pods";
    for n in 1..=COMMANDS {
        let started = RequestStarted {
            request_id: n,
            method: "GET".into(),
            path: path.into(),
            query: None,
            info: RequestInfo::classify(&http::Method::GET, path, None),
            kubectl_command: Some(
                if n % 10 == 0 {
                    "kubectl rollout"
                } else {
                    "kubectl get"
                }
                .into(),
            ),
            kubectl_session: Some(format!("k{n}")),
            user_agent: Some("kubectl/v1.32.0".into()),
            impersonation: None,
        };
        let finished = RequestFinished {
            request_id: n,
            status: 200,
            bytes_in: 0,
            bytes_out: 1_024,
            duration_ms: 3,
            error: None,
        };
        for kind in [
            AuditEventKind::RequestStarted(Box::new(started)),
            AuditEventKind::RequestFinished(finished),
        ] {
            let id = kms_pam::session::SessionId::new(session);
            if let Err(e) = chained.record(AuditEvent::now(id, kind)) {
                eprintln!("chaining failed: {e}");
            }
        }
    }
    chained.inner().events()
}

/// A console cookie for the admin, through a one-time link.
async fn sign_in(admin: &KmsClient) -> anyhow::Result<String> {
    let link = admin.console().link().await?;
    let client: Client<HttpConnector, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let answer = client
        .request(http::Request::get(link).body(Empty::new())?)
        .await?;
    let cookie = answer
        .headers()
        .get("set-cookie")
        .context("no console cookie")?
        .to_str()?;
    let value = cookie
        .trim_start_matches("kms_console=")
        .split(';')
        .next()
        .unwrap_or_default();
    Ok(value.to_owned())
}
