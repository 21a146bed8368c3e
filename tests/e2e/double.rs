//! The API server double against the real kubectl, with nothing in between: if these fail, the
//! double (not the proxy path) is wrong.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use kms_pam_tests::apiserver::{nginx_pod_names, send_raw, ApiServerDouble, DoubleConfig};
use kms_pam_tests::kubectl::Kubectl;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::{first_pod, read_lines};

async fn start_with(config: DoubleConfig) -> (ApiServerDouble, Kubectl) {
    let double = ApiServerDouble::start(config)
        .await
        .expect("start the double");
    let kubectl = Kubectl::new(&double.url(), double.ca_pem(), double.token()).expect("kubeconfig");
    (double, kubectl)
}

async fn start() -> (ApiServerDouble, Kubectl) {
    start_with(DoubleConfig::default()).await
}

async fn wait_for_no_streams(double: &ApiServerDouble) {
    let deadline = Instant::now() + Duration::from_secs(3);
    while double.open_streams() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(double.open_streams(), 0, "a stream outlived its client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_pods_prints_the_server_side_table() {
    let (double, kubectl) = start().await;
    let out = kubectl.run(&["get", "pods"]).await;
    assert!(out.success(), "{}", out.stderr);
    let stdout = out.stdout_str();
    let mut lines = stdout.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    let names: Vec<&str> = rows.iter().map(|r| r[0]).collect();
    assert_eq!(names, nginx_pod_names());
    assert!(
        rows.iter().all(|r| r[1..4] == ["1/1", "Running", "0"]),
        "{stdout}"
    );
    let list = double
        .requests()
        .into_iter()
        .find(|r| r.path == "/api/v1/namespaces/default/pods")
        .expect("the pod list request");
    assert!(list
        .header("accept")
        .unwrap_or_default()
        .contains("as=Table"));
    double.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_namespaces_and_describe_deployment() {
    let (double, kubectl) = start().await;
    let namespaces = kubectl.run(&["get", "namespaces"]).await;
    assert!(namespaces.success(), "{}", namespaces.stderr);
    let text = namespaces.stdout_str();
    assert!(
        text.contains("default") && text.contains("kube-system") && text.contains("Active"),
        "{text}"
    );

    let describe = kubectl.run(&["describe", "deployment", "nginx"]).await;
    assert!(describe.success(), "{}", describe.stderr);
    let text = describe.stdout_str();
    assert!(
        text.contains("3 desired | 3 updated | 3 total | 3 available"),
        "{text}"
    );
    assert!(
        text.contains("NewReplicaSet:   nginx-7c5ddbdf54 (3/3 replicas created)"),
        "{text}"
    );
    let requests = double.requests();
    assert!(requests.iter().any(|r| r.path.ends_with("/replicasets")
        && r.query
            .as_deref()
            .unwrap_or_default()
            .contains("labelSelector")));
    double.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_discovery_still_works() {
    let (double, kubectl) = start_with(DoubleConfig {
        aggregated_discovery: false,
        ..DoubleConfig::default()
    })
    .await;
    let out = kubectl.run(&["get", "deployments"]).await;
    assert!(out.success(), "{}", out.stderr);
    assert!(
        out.stdout_str().contains("nginx   3/3"),
        "{}",
        out.stdout_str()
    );
    assert!(
        double.requests().iter().any(|r| r.path == "/apis/apps/v1"),
        "kubectl read the group version document"
    );
    double.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_and_delete_a_configmap() {
    let (double, kubectl) = start().await;
    let create = kubectl
        .run(&[
            "create",
            "configmap",
            "e2e-cm",
            "--from-literal=k=v",
            "--from-literal=greeting=hello world",
        ])
        .await;
    assert!(create.success(), "{}", create.stderr);
    let post = double
        .requests()
        .into_iter()
        .find(|r| r.method == "POST")
        .expect("the create request");
    assert_eq!(
        post.header("content-type"),
        Some("application/vnd.kubernetes.protobuf")
    );
    assert!(post.body.starts_with(b"k8s\0"));

    let get = kubectl
        .run(&["get", "configmap", "e2e-cm", "-o", "json"])
        .await;
    assert!(get.success(), "{}", get.stderr);
    let object: Value = serde_json::from_slice(&get.stdout).expect("JSON");
    assert_eq!(object["data"]["greeting"], "hello world");
    assert_eq!(object["metadata"]["namespace"], "default");

    let again = kubectl
        .run(&["create", "configmap", "e2e-cm", "--from-literal=k=v"])
        .await;
    assert!(!again.success());
    assert!(
        again
            .stderr
            .contains("configmaps \"e2e-cm\" already exists"),
        "{}",
        again.stderr
    );

    let delete = kubectl.run(&["delete", "configmap", "e2e-cm"]).await;
    assert!(delete.success(), "{}", delete.stderr);
    let gone = kubectl.run(&["get", "configmap", "e2e-cm"]).await;
    assert!(!gone.success());
    assert!(gone.stderr.contains("NotFound"), "{}", gone.stderr);
    double.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_configmap_arrives_whole() {
    let (double, kubectl) = start().await;
    let out = kubectl
        .run(&["get", "configmap", "big", "-o", "json"])
        .await;
    assert!(out.success(), "{}", out.stderr);
    let size = out.stdout.len();
    assert!((19 << 20..22 << 20).contains(&size), "{size} bytes");
    let object: Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(object["metadata"]["name"], "big");
    double.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_events_and_closes_with_its_client() {
    let (double, kubectl) = start_with(DoubleConfig {
        watch_tick: None,
        ..DoubleConfig::default()
    })
    .await;
    let mut child = kubectl.spawn(&["get", "pods", "-w"]);
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    // Header + pods from the list; then poke a pod until the watch prints it.
    while got.len() < 5 && Instant::now() < deadline {
        if got.len() >= 4
            && double
                .requests()
                .iter()
                .any(|r| r.has_query_pair("watch", "true"))
        {
            double.emit_pod_event("default", &first_pod());
        }
        if let Ok(Ok(Some(line))) =
            tokio::time::timeout(Duration::from_millis(200), lines.next_line()).await
        {
            got.push(line);
        }
    }
    assert_eq!(got.len(), 5, "watch output: {got:?}");
    assert!(got[4].starts_with(&first_pod()), "{got:?}");
    child.kill().await.expect("kill kubectl");
    wait_for_no_streams(&double).await;
    double.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_follow_streams_until_the_client_leaves() {
    let (double, kubectl) = start().await;
    let mut child = kubectl.spawn(&["logs", "-f", "--tail=1", &first_pod()]);
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let got = read_lines(&mut lines, 3, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(got.iter().all(|l| l.contains("GET /?request=")), "{got:?}");
    assert_eq!(double.open_streams(), 1);
    child.kill().await.expect("kill kubectl");
    wait_for_no_streams(&double).await;
    double.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_over_websocket() {
    let (double, kubectl) = start().await;
    let pod = first_pod();
    let echo = kubectl.run(&["exec", &pod, "--", "echo", "hello"]).await;
    assert!(echo.success(), "{}", echo.stderr);
    assert_eq!(echo.stdout_str(), "hello\n");
    let exec = double
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/exec"))
        .expect("exec request");
    assert_eq!(
        exec.upgrade.as_deref(),
        Some("websocket"),
        "kubectl fell back to SPDY"
    );
    assert!(
        !double.requests().iter().any(|r| r.method == "POST"),
        "no SPDY retry"
    );

    let input: Vec<u8> = (0..1024 * 1024).map(|i: usize| (i % 251) as u8).collect();
    let cat = kubectl
        .run_with_stdin(&["exec", "-i", &pod, "--", "cat"], input.clone())
        .await;
    assert!(cat.success(), "{}", cat.stderr);
    assert!(
        cat.stdout == input,
        "cat returned {} bytes that differ from stdin",
        cat.stdout.len()
    );

    let exit = kubectl
        .run(&["exec", &pod, "--", "sh", "-c", "exit 3"])
        .await;
    assert_eq!(exit.status.code(), Some(3), "{}", exit.stderr);

    let missing = kubectl.run(&["exec", &pod, "--", "no-such-binary"]).await;
    assert!(!missing.success());
    assert!(
        missing.stderr.contains("executable file not found"),
        "{}",
        missing.stderr
    );
    wait_for_no_streams(&double).await;
    double.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_token_is_unauthorized() {
    let double = ApiServerDouble::start(DoubleConfig::default())
        .await
        .expect("start");
    let stranger = Kubectl::new(&double.url(), double.ca_pem(), "wrong-token").expect("kubeconfig");
    let out = stranger.run(&["get", "pods"]).await;
    assert!(!out.success());
    assert!(
        out.stderr.contains("Unauthorized") || out.stderr.contains("must be logged in"),
        "{}",
        out.stderr
    );
    assert!(
        !double.requests().is_empty(),
        "requests are recorded before authentication"
    );
    double.shutdown().await;
}

async fn raw(
    double: &ApiServerDouble,
    request: http::request::Builder,
    body: &'static [u8],
) -> (StatusCode, Value) {
    let request = request
        .body(Full::new(Bytes::from_static(body)))
        .expect("request");
    let response = send_raw(&double.url(), double.ca_pem(), request)
        .await
        .expect("raw request");
    let status = serde_json::from_slice(response.body()).unwrap_or(Value::Null);
    (response.status(), status)
}

async fn small_double() -> ApiServerDouble {
    let config = DoubleConfig {
        big_object_bytes: 0,
        ..DoubleConfig::default()
    };
    ApiServerDouble::start(config).await.expect("start")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_request_without_token_gets_the_401_status() {
    let double = small_double().await;
    let (code, status) = raw(&double, Request::get("/api/v1/pods"), b"").await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    let expected: Value = serde_json::from_str(
        r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"#,
    )
    .expect("json");
    assert_eq!(status, expected);
    let impersonating = Request::get("/api/v1/pods")
        .header("authorization", format!("Bearer {}", double.token()))
        .header("impersonate-user", "admin");
    let (code, _) = raw(&double, impersonating, b"").await;
    assert_eq!(
        code,
        StatusCode::FORBIDDEN,
        "a plain service account may not impersonate"
    );
    double.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_status_errors() {
    let double = small_double().await;
    let bearer = format!("Bearer {}", double.token());
    let configmaps = "/api/v1/namespaces/default/configmaps";
    let post = |content_type: &str| {
        Request::post(configmaps)
            .header("authorization", &bearer)
            .header("content-type", content_type)
    };
    let (code, status) = raw(
        &double,
        post("application/vnd.kubernetes.protobuf"),
        b"k8s\0\x0a\xff\xff\xff",
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{status}");
    assert_eq!(status["reason"], "BadRequest");
    let (code, _) = raw(&double, post("application/json"), b"{\"metadata\":").await;
    assert_eq!(code, StatusCode::BAD_REQUEST);

    let unknown = Request::get("/api/v1/widgets").header("authorization", &bearer);
    let (code, status) = raw(&double, unknown, b"").await;
    assert_eq!(
        (code, status["reason"].as_str()),
        (StatusCode::NOT_FOUND, Some("NotFound"))
    );
    let post_to_name =
        Request::post(format!("{configmaps}/kube-root-ca.crt")).header("authorization", &bearer);
    let (code, _) = raw(&double, post_to_name, b"{}").await;
    assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED);
    let missing = Request::delete(format!("{configmaps}/nope")).header("authorization", &bearer);
    let (code, status) = raw(&double, missing, b"").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(status["message"], "configmaps \"nope\" not found");
    double.shutdown().await;
}
