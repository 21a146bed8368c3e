//! Real kubectl through the whole path: loopback proxy (HTTPS, local token) → tunnel (in-memory,
//! and mutual TLS over 127.0.0.1) → gateway engine → API server double. After every test, what reached the
//! cluster is checked: the account token on every request, no `Impersonate-*`, never the local
//! token.

use std::time::Duration;

use kms_pam::audit::AuditEventKind;
use kms_pam::kube::{StreamKind, Verb};
use kms_pam_tests::harness::{InProcessPath, PathOptions, Tunnel};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::{first_pod, read_lines};

async fn start(tunnel: Tunnel) -> InProcessPath {
    InProcessPath::start_with(PathOptions {
        tunnel,
        ..PathOptions::default()
    })
    .await
}

/// Every request the double saw carried exactly the account token, no impersonation header and
/// nothing of the local token.
pub(crate) fn assert_cluster_saw_only_account_token(path: &InProcessPath) {
    let requests = path.double.requests();
    assert!(!requests.is_empty(), "the double saw no request");
    let expected = format!("Bearer {}", path.double.token());
    let local = path.local_token.expose();
    for r in &requests {
        let auth: Vec<_> = r.headers.get_all("authorization").iter().collect();
        assert_eq!(auth.len(), 1, "{} {}: {auth:?}", r.method, r.path);
        assert_eq!(auth[0], expected.as_str(), "{} {}", r.method, r.path);
        for (name, value) in &r.headers {
            assert!(
                !name.as_str().starts_with("impersonate-"),
                "{} {} carried {name}",
                r.method,
                r.path
            );
            let value = String::from_utf8_lossy(value.as_bytes());
            assert!(
                !value.contains(local),
                "{} {}: local token in {name}",
                r.method,
                r.path
            );
        }
    }
}

async fn get_pods_namespaces_and_describe_deployment(tunnel: Tunnel) {
    let path = start(tunnel).await;
    let pods = path.kubectl.run(&["get", "pods"]).await;
    assert!(pods.success(), "get pods: {}", pods.stderr);
    let out = pods.stdout_str();
    assert!(out.contains("NAME") && out.contains("STATUS"), "{out}");
    assert!(
        out.contains(&first_pod()) && out.contains("Running"),
        "{out}"
    );

    let ns = path.kubectl.run(&["get", "namespaces"]).await;
    assert!(ns.success(), "get namespaces: {}", ns.stderr);
    assert!(
        ns.stdout_str().contains("kube-system"),
        "{}",
        ns.stdout_str()
    );

    let describe = path.kubectl.run(&["describe", "deployment", "nginx"]).await;
    assert!(describe.success(), "describe: {}", describe.stderr);
    let out = describe.stdout_str();
    assert!(out.contains("Name:") && out.contains("nginx"), "{out}");
    assert!(out.contains("Replicas:"), "{out}");

    // The gateway audited the list with kubectl's view of it.
    let events = path.audit.events();
    let list = events
        .iter()
        .find_map(|e| match &e.kind {
            AuditEventKind::RequestStarted(r)
                if r.info.verb == Verb::List && r.info.resource.as_deref() == Some("pods") =>
            {
                Some(r.clone())
            }
            _ => None,
        })
        .expect("a list pods request was audited");
    assert_eq!(list.kubectl_command.as_deref(), Some("kubectl get"));
    assert!(list.kubectl_session.is_some());
    assert_eq!(list.info.namespace.as_deref(), Some("default"));
    assert!(list.user_agent.unwrap_or_default().starts_with("kubectl/"));
    let finished = events.iter().any(|e| {
        matches!(&e.kind, AuditEventKind::RequestFinished(f)
            if f.request_id == list.request_id && f.status == 200 && f.bytes_out > 0)
    });
    assert!(finished, "the list's RequestFinished with status and bytes");
    assert_cluster_saw_only_account_token(&path);
    path.shutdown().await;
}

async fn create_and_delete_configmap(tunnel: Tunnel) {
    let path = start(tunnel).await;
    let create = path
        .kubectl
        .run(&[
            "create",
            "configmap",
            "e2e-cm",
            "--from-literal=greeting=hello",
        ])
        .await;
    assert!(create.success(), "create: {}", create.stderr);
    let get = path
        .kubectl
        .run(&["get", "configmap", "e2e-cm", "-o", "json"])
        .await;
    assert!(get.success(), "get: {}", get.stderr);
    let cm: serde_json::Value = serde_json::from_slice(&get.stdout).expect("configmap JSON");
    assert_eq!(cm["data"]["greeting"], "hello");
    // The protobuf body crossed both proxies byte for byte.
    let post = path
        .double
        .requests()
        .into_iter()
        .find(|r| r.method == "POST" && r.path.ends_with("/configmaps"))
        .expect("the create reached the cluster");
    assert_eq!(
        post.headers["content-type"],
        "application/vnd.kubernetes.protobuf"
    );
    let delete = path.kubectl.run(&["delete", "configmap", "e2e-cm"]).await;
    assert!(delete.success(), "delete: {}", delete.stderr);
    let gone = path.kubectl.run(&["get", "configmap", "e2e-cm"]).await;
    assert!(!gone.success());
    assert!(
        gone.stderr.contains("NotFound") || gone.stderr.contains("not found"),
        "{}",
        gone.stderr
    );
    assert_cluster_saw_only_account_token(&path);
    path.shutdown().await;
}

async fn apply_creates_then_updates(tunnel: Tunnel) {
    let path = start(tunnel).await;
    let manifest = |value: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\ndata:\n  k: {value}\n"
        )
    };
    for value in ["one", "two"] {
        // No OpenAPI in the double: kubectl needs --validate=false (KUBECTL-NOTES.md).
        let apply = path
            .kubectl
            .run_with_stdin(
                &["apply", "--validate=false", "-f", "-"],
                manifest(value).into_bytes(),
            )
            .await;
        assert!(apply.success(), "apply {value}: {}", apply.stderr);
    }
    let get = path
        .kubectl
        .run(&["get", "configmap", "applied", "-o", "json"])
        .await;
    assert!(get.success(), "{}", get.stderr);
    let cm: serde_json::Value = serde_json::from_slice(&get.stdout).expect("JSON");
    assert_eq!(
        cm["data"]["k"], "two",
        "the second apply patched the object"
    );
    assert!(
        path.double.requests().iter().any(|r| r.method == "PATCH"),
        "the second apply was a patch"
    );
    assert_cluster_saw_only_account_token(&path);
    path.shutdown().await;
}

async fn twenty_megabyte_object_streams_through(tunnel: Tunnel) {
    let path = start(tunnel).await;
    let big = path
        .kubectl
        .run(&["get", "configmap", "big", "-o", "json"])
        .await;
    assert!(big.success(), "get big: {}", big.stderr);
    assert!(
        big.stdout.len() > 19 * 1024 * 1024,
        "{} bytes",
        big.stdout.len()
    );
    let v: serde_json::Value = serde_json::from_slice(&big.stdout).expect("valid JSON");
    assert_eq!(v["metadata"]["name"], "big");
    assert_cluster_saw_only_account_token(&path);
    path.shutdown().await;
}

async fn watch_delivers_events(tunnel: Tunnel) {
    let path = start(tunnel).await;
    let mut child = path.kubectl.spawn(&["get", "pods", "-w"]);
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    // Header + the listed pods, then at least one event from the watch itself.
    let initial = 1 + kms_pam_tests::apiserver::nginx_pod_names().len();
    let got = read_lines(&mut lines, initial + 1, Duration::from_secs(20)).await;
    assert!(got.len() > initial, "watch output: {got:?}");
    child.kill().await.expect("kill kubectl");
    let watched = path.audit.events().iter().any(|e| {
        matches!(
            &e.kind,
            AuditEventKind::StreamOpened {
                stream: StreamKind::Watch,
                ..
            }
        )
    });
    assert!(watched, "the watch was audited as a stream");
    assert_cluster_saw_only_account_token(&path);
    path.shutdown().await;
}

async fn logs_follow_streams_lines(tunnel: Tunnel) {
    let path = start(tunnel).await;
    let mut child = path.kubectl.spawn(&["logs", "-f", &first_pod()]);
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let got = read_lines(&mut lines, 3, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 3, "log lines: {got:?}");
    child.kill().await.expect("kill kubectl");
    // The follow stream closes upstream once kubectl goes away.
    let mut open = usize::MAX;
    for _ in 0..50 {
        open = path.double.open_streams();
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(open, 0, "the double still serves the follow stream");
    assert_cluster_saw_only_account_token(&path);
    path.shutdown().await;
}

async fn exec_echo_over_websocket(tunnel: Tunnel) {
    let path = start(tunnel).await;
    let pod = first_pod();
    let out = path
        .kubectl
        .run(&["exec", &pod, "--", "echo", "hello", "world"])
        .await;
    assert!(out.success(), "exec: {}", out.stderr);
    assert_eq!(out.stdout_str(), "hello world\n");
    let exec = path
        .double
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/exec"))
        .expect("the exec reached the cluster");
    assert_eq!(
        exec.upgrade.as_deref(),
        Some("websocket"),
        "WebSocket, not the SPDY fallback"
    );
    assert_cluster_saw_only_account_token(&path);
    path.shutdown().await;
}

async fn exec_stdin_cat_round_trips_one_megabyte(tunnel: Tunnel) {
    let path = start(tunnel).await;
    let input: Vec<u8> = (0..1024 * 1024)
        .map(|i| b"abcdefghijklmnopqrstuvwxyz\n"[i % 27])
        .collect();
    let out = path
        .kubectl
        .run_with_stdin(&["exec", "-i", &first_pod(), "--", "cat"], input.clone())
        .await;
    assert!(out.success(), "exec -i cat: {}", out.stderr);
    assert_eq!(out.stdout.len(), input.len());
    assert!(out.stdout == input, "stdout differs from stdin");
    assert_cluster_saw_only_account_token(&path);
    // kubectl may exit before the gateway's splice has ended; the gateway's stop waits for it.
    let audit = path.audit.clone();
    path.shutdown().await;
    // The splice counted the stream both ways.
    let closed = audit.events().into_iter().find_map(|e| match e.kind {
        AuditEventKind::StreamClosed(c) if c.stream == StreamKind::Exec => Some(c),
        _ => None,
    });
    let closed = closed.expect("exec stream closed event");
    assert!(closed.bytes_in >= input.len() as u64, "{closed:?}");
    assert!(closed.bytes_out >= input.len() as u64, "{closed:?}");
}

async fn exec_exit_code_is_kept(tunnel: Tunnel) {
    let path = start(tunnel).await;
    let out = path
        .kubectl
        .run(&["exec", &first_pod(), "--", "sh", "-c", "exit 3"])
        .await;
    assert_eq!(out.status.code(), Some(3), "stderr: {}", out.stderr);
    path.shutdown().await;
}

async fn impersonation_never_reaches_the_cluster(tunnel: Tunnel) {
    let path = start(tunnel).await;
    let out = path
        .kubectl
        .run(&[
            "get",
            "pods",
            "--as=system:admin",
            "--as-group=system:masters",
        ])
        .await;
    // The double, like a real API server, would have acted on the headers; they were removed.
    assert!(out.success(), "get pods --as: {}", out.stderr);
    assert_cluster_saw_only_account_token(&path);
    path.shutdown().await;
}

async fn request_without_the_local_token_gets_401_at_the_local_proxy(tunnel: Tunnel) {
    let path = start(tunnel).await;
    let stranger = kms_pam_tests::kubectl::Kubectl::new(
        &path.local_url,
        &path.local_ca_pem,
        "not-the-session-token",
    )
    .expect("kubeconfig");
    let out = stranger.run(&["get", "pods"]).await;
    assert!(!out.success());
    assert!(
        out.stderr.contains("Unauthorized") || out.stderr.contains("must be logged in"),
        "{}",
        out.stderr
    );
    assert!(
        path.double.requests().is_empty(),
        "nothing may reach the cluster: {:?}",
        path.double.requests()
    );
    assert!(
        path.audit.events().is_empty(),
        "nothing reached the gateway"
    );
    path.shutdown().await;
}

async fn terminated_session_is_refused_and_its_watch_cut(tunnel: Tunnel) {
    let path = start(tunnel).await;
    let mut child = path.kubectl.spawn(&["get", "pods", "-w"]);
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    // Wait until the watch itself delivered an event, so it is open at the gateway.
    let initial = 1 + kms_pam_tests::apiserver::nginx_pod_names().len();
    let got = read_lines(&mut lines, initial + 1, Duration::from_secs(20)).await;
    assert!(got.len() > initial, "{got:?}");

    path.sessions
        .terminate(&path.session.id)
        .await
        .expect("terminate");
    // kubectl's watch ends: the gateway sent an ERROR event with the Status and closed it.
    let exited = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
    exited
        .expect("kubectl -w ended after termination")
        .expect("wait");
    let cut = path.audit.events().into_iter().find_map(|e| match e.kind {
        AuditEventKind::StreamClosed(c) if c.stream == StreamKind::Watch => Some(c),
        _ => None,
    });
    let reason = cut.and_then(|c| c.reason).unwrap_or_default();
    assert!(
        reason.contains("terminated by an administrator"),
        "{reason:?}"
    );
    assert_eq!(
        path.double.open_streams(),
        0,
        "the upstream watch was closed too"
    );

    // Later requests get the Status kubectl prints, and nothing reaches the cluster.
    let seen = path.double.requests().len();
    let again = path.kubectl.run(&["get", "pods"]).await;
    assert!(!again.success());
    assert!(again.stderr.contains("terminated"), "{}", again.stderr);
    assert_eq!(
        path.double.requests().len(),
        seen,
        "a request reached the cluster after termination"
    );
    path.shutdown().await;
}

/// Each operation, once over the in-memory tunnel and once over mutual TLS.
macro_rules! over_both_tunnels {
    ($($name:ident,)*) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Tunnel::Memory).await
                }
            )*
        }
        mod mtls {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Tunnel::Tls).await
                }
            )*
        }
    };
}

over_both_tunnels! {
    apply_creates_then_updates,
    get_pods_namespaces_and_describe_deployment,
    create_and_delete_configmap,
    twenty_megabyte_object_streams_through,
    watch_delivers_events,
    logs_follow_streams_lines,
    exec_echo_over_websocket,
    exec_stdin_cat_round_trips_one_megabyte,
    exec_exit_code_is_kept,
    impersonation_never_reaches_the_cluster,
    request_without_the_local_token_gets_401_at_the_local_proxy,
    terminated_session_is_refused_and_its_watch_cut,
}
