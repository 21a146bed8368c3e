//! Sessions nobody holds end by themselves (cause `abandoned`), and refused requests (API and
//! console sign-in) are visible and slowed without slowing anybody with a valid token.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::Value;

use super::console::page;
use super::Kms;
use crate::server::edge::failure_budget::{BURST, STEP};

#[tokio::test]
async fn a_session_whose_owner_stops_polling_ends_as_abandoned_and_the_gateway_hears_it() {
    let kms = Kms::start_with(|c| c.with_abandon_after(Duration::from_secs(2))).await;
    let gateway = kms.gateway("gw").await;
    kms.resource("prod", "gw").await;
    let alice = kms.user("alice", false).await;
    kms.grant("prod", "alice", 600).await;
    let held = kms.session_id("/v1", &alice, "prod").await;
    let dropped = kms.session_id("/v1", &alice, "prod").await;
    let seq = kms
        .get("/v1/gateway/changes?after=0", &gateway)
        .await
        .expect(StatusCode::OK)["seq"]
        .as_u64()
        .unwrap();
    // The owner polls one session every half second, as `pam access` does every second; an
    // administrator reading the other does not keep it alive.
    let started = Instant::now();
    let mut abandoned = None;
    while started.elapsed() < Duration::from_secs(10) {
        kms.get(&format!("/v1/sessions/{held}?commands=false"), &alice)
            .await
            .expect(StatusCode::OK);
        let other = kms
            .get(&format!("/v1/sessions/{dropped}"), &kms.admin)
            .await;
        let other = other.expect(StatusCode::OK);
        if other["status"] != "active" {
            abandoned = Some(other);
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let abandoned = abandoned.expect("the unheld session ended");
    assert_eq!(
        (
            abandoned["status"].as_str(),
            abandoned["end_cause"].as_str()
        ),
        (Some("ended"), Some("abandoned"))
    );
    let changes = kms
        .get(&format!("/v1/gateway/changes?after={seq}"), &gateway)
        .await
        .expect(StatusCode::OK);
    assert!(
        changes["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["session_id"] == dropped.as_str() && c["status"] == "ended"),
        "{changes}"
    );
    let held = kms.get(&format!("/v1/sessions/{held}"), &alice).await;
    assert_eq!(held.expect(StatusCode::OK)["status"], "active");
    assert!(kms
        .metrics()
        .await
        .contains(r#"kms_pam_kms_sessions_ended_total{cause="abandoned"} 1"#),);
}

#[tokio::test]
async fn refusals_are_counted_and_bad_tokens_slowed_but_never_a_good_one() {
    let kms = Kms::start().await;
    let member = kms.user("alice", false).await;
    assert_eq!(
        kms.get("/v1/users", &member).await.status,
        StatusCode::FORBIDDEN
    );
    // Within the burst, failures are answered at once.
    for _ in 0..BURST as usize {
        let started = Instant::now();
        let reply = kms.get("/v1/whoami", "kmsu_guess").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert!(started.elapsed() < STEP, "{:?}", started.elapsed());
    }
    // Beyond it, each failure waits longer; a valid token from the same source does not wait.
    let started = Instant::now();
    assert_eq!(
        kms.get("/v1/whoami", "kmsu_guess").await.status,
        StatusCode::UNAUTHORIZED
    );
    let slowed = started.elapsed();
    assert!(slowed >= STEP, "{slowed:?}");
    let started = Instant::now();
    kms.get("/v1/whoami", &member).await.expect(StatusCode::OK);
    assert!(started.elapsed() < slowed, "{:?}", started.elapsed());
    // Requests without any credential are refused and counted, but cost nothing.
    let started = Instant::now();
    let anonymous = kms
        .call(http::Method::GET, "/v1/whoami", None, Value::Null)
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert!(started.elapsed() < STEP);
    let metrics = kms.metrics().await;
    for series in [
        r#"kms_pam_kms_auth_refusals_total{status="401",route="/v1/whoami"} 12"#,
        r#"kms_pam_kms_auth_refusals_total{status="403",route="/v1/users"} 1"#,
        "kms_pam_kms_auth_delayed_total 1",
    ] {
        assert!(metrics.contains(series), "{series} in\n{metrics}");
    }
    assert!(!metrics.contains("kmsu_"), "no token in the metrics");
}

/// The console's sign-in page spends the same per-source budget as the API: wrong tokens and
/// wrong or used links are slowed beyond the burst, a valid token never.
#[tokio::test]
async fn wrong_console_sign_ins_are_slowed_like_wrong_api_tokens() {
    let kms = Kms::start().await;
    let alice = kms.user("alice", false).await;
    let same_origin = [("sec-fetch-site", "same-origin")];
    let sign_in = |token: String| {
        let kms = &kms;
        async move {
            let form = format!("token={token}");
            let started = Instant::now();
            let answer = page(kms, Method::POST, "/login", None, &same_origin, Some(&form)).await;
            (answer.status, started.elapsed())
        }
    };
    for i in 0..BURST as usize {
        let (status, took) = sign_in(format!("kmsu_guess{i}")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(took < STEP, "within the burst: {took:?}");
    }
    let (status, slowed) = sign_in("kmsu_guess".to_owned()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(slowed >= STEP, "beyond the burst: {slowed:?}");
    let started = Instant::now();
    let link = page(&kms, Method::GET, "/login/link/kmsl_guess", None, &[], None).await;
    assert_eq!(link.status, StatusCode::UNAUTHORIZED);
    assert!(started.elapsed() >= STEP * 2, "{:?}", started.elapsed());
    let (status, took) = sign_in(alice).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(took < STEP, "a valid token is never slowed: {took:?}");
    let metrics = kms.metrics().await;
    for series in [
        r#"kms_pam_kms_auth_refusals_total{status="401",route="/login"} 11"#,
        r#"kms_pam_kms_auth_refusals_total{status="401",route="/login/link/{code}"} 1"#,
        "kms_pam_kms_auth_delayed_total 2",
    ] {
        assert!(metrics.contains(series), "{series} in\n{metrics}");
    }
}

/// Every event of this thread's tracing, one line each (`message` and `name=value` fields).
#[derive(Clone, Default)]
struct CapturedLog(Arc<Mutex<Vec<String>>>);

impl CapturedLog {
    fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={value:?} ", field.name());
    }
}

impl tracing::Subscriber for CapturedLog {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut line = format!("{} ", event.metadata().level());
        event.record(&mut Fields(&mut line));
        self.0.lock().unwrap().push(line);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// The refusal log line names who, the route and the source, and never the token presented.
/// (A current-thread runtime: the server's tasks run on this thread, under its subscriber.)
#[tokio::test(flavor = "current_thread")]
async fn a_refusal_is_logged_with_who_route_and_source_and_never_the_token() {
    let log = CapturedLog::default();
    let _guard = tracing::subscriber::set_default(log.clone());
    let kms = Kms::start().await;
    let alice = kms.user("alice", false).await;
    let guessed = "kmsu_guessed-token-7d1e0c";
    let typed = "kmsu_typed-at-the-console-4b2a";
    assert_eq!(
        kms.get("/v1/whoami", guessed).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        kms.get("/v1/users", &alice).await.status,
        StatusCode::FORBIDDEN
    );
    let form = format!("token={typed}");
    let same_origin = [("sec-fetch-site", "same-origin")];
    let login = page(
        &kms,
        Method::POST,
        "/login",
        None,
        &same_origin,
        Some(&form),
    )
    .await;
    assert_eq!(login.status, StatusCode::UNAUTHORIZED);

    let lines = log.lines();
    let refused: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("message=request refused"))
        .collect();
    for expected in [
        [
            "WARN ",
            "status=401 ",
            "method=GET ",
            "route=/v1/whoami ",
            "source=127.0.0.1 ",
            r#"who="unknown user token" "#,
        ],
        [
            "WARN ",
            "status=403 ",
            "method=GET ",
            "route=/v1/users ",
            "source=127.0.0.1 ",
            r#"who="user alice" "#,
        ],
        [
            "WARN ",
            "status=401 ",
            "method=POST ",
            "route=/login ",
            "source=127.0.0.1 ",
            r#"who="console sign-in token" "#,
        ],
    ] {
        assert!(
            refused
                .iter()
                .any(|line| expected.iter().all(|field| line.contains(field))),
            "no refusal logged with {expected:?} in {refused:#?}"
        );
    }
    for secret in [guessed, typed, alice.as_str(), kms.admin.as_str()] {
        let leaked: Vec<&String> = lines.iter().filter(|l| l.contains(secret)).collect();
        assert!(leaked.is_empty(), "a token was logged: {leaked:#?}");
    }
}
