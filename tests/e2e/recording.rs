//! Issue 14 point 2 with the real kubectl: no exec, attach or port-forward reaches the cluster
//! unrecorded. SPDY exec (`KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false`) and port-forward are refused
//! with a `Status` saying why under the default policy, and pass (unrecorded, counted) only on a
//! resource that allows it; a WebSocket exec offering only the base64 subprotocol is recorded; one
//! offering nothing the gateway reads is refused. The recording caps (the pipeline's and a
//! resource's own) keep what they promise and mark the rest as sized gaps.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use kms_pam::audit::recording::{RecordingConfig, RecordingPolicy};
use kms_pam::audit::AuditEventKind;
use kms_pam::audit::{recordings, replay, Recording};
use kms_pam_tests::apiserver::{open_websocket, send_raw, DoubleConfig};
use kms_pam_tests::harness::{InProcessPath, PathOptions};
use tokio_tungstenite::tungstenite::Message;

use crate::support::first_pod;

const SPDY: (&str, &str) = ("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false");

fn exec_requests(path: &InProcessPath) -> usize {
    path.double
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/exec") || r.path.ends_with("/portforward"))
        .count()
}

/// The status the gateway recorded for each request that ended.
fn finished_statuses(path: &InProcessPath) -> Vec<u16> {
    path.audit
        .events()
        .into_iter()
        .filter_map(|e| match e.kind {
            AuditEventKind::RequestFinished(f) => Some(f.status),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spdy_exec_is_refused_with_a_clear_status_and_never_reaches_the_cluster() {
    let path = InProcessPath::start().await;
    let out = path
        .kubectl
        .run_with_env(&["exec", &first_pod(), "--", "echo", "hi"], &[SPDY])
        .await;
    assert!(!out.success(), "the SPDY exec ran: {}", out.stdout_str());
    assert!(
        out.stderr
            .contains("records exec and attach over WebSocket only"),
        "kubectl shows why: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains("KUBECTL_REMOTE_COMMAND_WEBSOCKETS"),
        "and what to do: {}",
        out.stderr
    );
    assert_eq!(exec_requests(&path), 0, "the cluster saw no exec");
    assert!(finished_statuses(&path).contains(&403));
    path.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_forward_is_refused_under_the_default_policy() {
    let path = InProcessPath::start().await;
    let out = path
        .kubectl
        .run(&["port-forward", &format!("pod/{}", first_pod()), ":80"])
        .await;
    assert!(!out.success(), "port-forward ran: {}", out.stdout_str());
    assert!(
        out.stderr.contains("cannot record port-forward traffic"),
        "{}",
        out.stderr
    );
    assert_eq!(exec_requests(&path), 0, "the cluster saw no port-forward");
    path.shutdown().await;
}

/// Requests the double saw on a `proxy` subresource.
fn proxy_requests(path: &InProcessPath) -> Vec<String> {
    path.double
        .requests()
        .into_iter()
        .map(|r| r.path)
        .filter(|p| p.contains("/proxy"))
        .collect()
}

/// Issue 28 point 3, as an attacker would try it: exec through the kubelet without an upgrade
/// (`POST /api/v1/nodes/NODE/proxy/run/NS/POD/C`, body `cmd=…`), and reads through pod and
/// service proxies, carry nothing the recorder reads. Under the default policy each is refused
/// with a Status saying why, and the cluster sees none of them; a resource that allows
/// unrecorded streams lets them through. Before the fix the kubelet exec was forwarded and
/// recorded only as a path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_and_pod_proxies_are_refused_under_the_default_policy() {
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("run.txt");
    std::fs::write(&body, "cmd=cat /etc/shadow").unwrap();
    let body = body.to_str().unwrap().to_owned();
    let run = format!("/api/v1/nodes/node-1/proxy/run/default/{}/app", first_pod());
    let pod_proxy = format!("/api/v1/namespaces/default/pods/{}/proxy/", first_pod());
    let attempts: [Vec<&str>; 3] = [
        vec!["create", "--raw", &run, "-f", &body],
        vec!["get", "--raw", &pod_proxy],
        vec![
            "get",
            "--raw",
            "/api/v1/namespaces/default/services/web:80/proxy/admin",
        ],
    ];

    let path = InProcessPath::start().await;
    for args in &attempts {
        let out = path.kubectl.run(args).await;
        assert!(!out.success(), "{args:?} ran: {}", out.stdout_str());
        assert!(
            out.stderr
                .contains("cannot record what a proxy request carries")
                && out.stderr.contains("--unrecorded-streams=allow"),
            "{args:?}: kubectl shows why and what to do: {}",
            out.stderr
        );
    }
    assert_eq!(
        proxy_requests(&path),
        Vec::<String>::new(),
        "the cluster saw none"
    );
    assert_eq!(
        finished_statuses(&path)
            .iter()
            .filter(|s| **s == 403)
            .count(),
        3
    );
    path.shutdown().await;

    let path = InProcessPath::start_with(PathOptions {
        recording: RecordingPolicy::allow(),
        ..PathOptions::default()
    })
    .await;
    for args in &attempts {
        // The double has no kubelet behind it; what matters is that the request reached it.
        let _ = path.kubectl.run(args).await;
    }
    assert_eq!(
        proxy_requests(&path).len(),
        3,
        "{:?}",
        proxy_requests(&path)
    );
    path.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_that_allows_unrecorded_streams_lets_spdy_through() {
    let path = InProcessPath::start_with(PathOptions {
        recording: RecordingPolicy::allow(),
        ..PathOptions::default()
    })
    .await;
    let out = path
        .kubectl
        .run_with_env(&["exec", &first_pod(), "--", "echo", "hi"], &[SPDY])
        .await;
    // The double speaks no SPDY and says so; what matters is that the request reached it.
    assert!(!out.success());
    let exec = path
        .double
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/exec"))
        .expect("the SPDY exec reached the cluster");
    assert_eq!(
        exec.headers
            .get("upgrade")
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("spdy/3.1")
    );
    path.shutdown().await;
}

/// Runs `cat` over a WebSocket exec on the base64 subprotocol, types "top secret\n", reads the
/// echo, closes, and returns the gateway's recording of it once it ended.
async fn exec_cat_base64(path: &InProcessPath) -> Recording {
    // "top secret\n" on channel 0
    let stdin = Message::Text("0dG9wIHNlY3JldAo=".into());
    exec_cat_typing(path, "base64.channel.k8s.io", stdin).await
}

/// Runs `cat` over a WebSocket exec on `protocol` and types "top secret\n" as `stdin` (a message
/// of whichever opcode the client chooses), reads the echo, closes, and returns the gateway's
/// recording once it ended.
async fn exec_cat_typing(path: &InProcessPath, protocol: &str, stdin: Message) -> Recording {
    let target = format!(
        "/api/v1/namespaces/default/pods/{}/exec?command=cat&stdin=true&stdout=true",
        first_pod()
    );
    let (mut ws, answer) = open_websocket(
        &path.local_url,
        &path.local_ca_pem,
        &target,
        path.local_token.expose(),
        protocol,
    )
    .await
    .expect("the exec is admitted");
    assert_eq!(answer.headers()["sec-websocket-protocol"], protocol);
    ws.send(stdin).await.expect("stdin");
    let base64 = protocol.contains("base64");
    let echoed = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(message)) = ws.next().await {
            // The API server answers in the protocol's own kind of message.
            let echo = match &message {
                Message::Binary(data) if !base64 => data.starts_with(b"\x01top secret"),
                Message::Text(text) if base64 => text.as_str() == "1dG9wIHNlY3JldAo=",
                _ => false,
            };
            if echo {
                return;
            }
        }
    });
    echoed
        .await
        .expect("the API server ran what was typed: cat echoed it");
    let _ = ws.close(None).await;
    drop(ws);
    for _ in 0..200 {
        let recorded = recordings(&path.audit.events());
        if let Some(ended) = recorded.into_iter().find(|r| r.ended.is_some()) {
            return ended;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the exec's recording did not end");
}

/// Issue 28 point 2, as an attacker would try it: kube-apiserver reads a text message on the
/// binary channel protocols as binary (first byte = channel) and runs it as stdin, so stdin sent
/// in text frames must be recorded as what ran, and likewise a binary message on the base64
/// protocol. The API server double executes them as kube-apiserver does. Before the fix the
/// input ran, the recording kept nothing of it and only said "incomplete".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_input_in_text_frames_is_recorded_as_the_api_server_runs_it() {
    let path = InProcessPath::start().await;
    let typed = Message::Text("\u{0}top secret\n".into());
    let recording = exec_cat_typing(&path, "v5.channel.k8s.io", typed).await;
    assert_eq!(recording.channel(0), b"top secret\n", "what was typed");
    assert_eq!(replay(&recording), b"top secret\n", "what came back");
    assert!(recording.complete(), "{:?}", recording.ended);
    path.shutdown().await;

    let path = InProcessPath::start().await;
    let typed = Message::Binary(b"0dG9wIHNlY3JldAo=".to_vec().into());
    let recording = exec_cat_typing(&path, "base64.channel.k8s.io", typed).await;
    assert_eq!(recording.channel(0), b"top secret\n", "what was typed");
    assert!(recording.complete(), "{:?}", recording.ended);
    path.shutdown().await;
}

/// The gaps of a recording as (channel, offset, bytes).
fn gaps(recording: &Recording) -> Vec<(u8, u64, u64)> {
    let ended = recording.ended.as_ref().expect("ended");
    ended
        .gaps
        .iter()
        .map(|g| (g.channel, g.offset, g.bytes))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_exec_on_the_base64_subprotocol_is_recorded() {
    let path = InProcessPath::start().await;
    let recording = exec_cat_base64(&path).await;
    assert_eq!(
        recording.details.protocol.as_deref(),
        Some("base64.channel.k8s.io")
    );
    assert_eq!(recording.channel(0), b"top secret\n", "what was typed");
    assert_eq!(replay(&recording), b"top secret\n", "what came back");
    assert!(recording.complete(), "{:?}", recording.ended);
    path.shutdown().await;
}

/// An embedder's recording settings (`PipelineBuilder::recording`) cap what the gateway keeps:
/// 4 bytes shared, 6 of input past it; the rest of each channel is a gap with its size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipelines_recording_caps_apply_and_the_rest_is_a_sized_gap() {
    let path = InProcessPath::start_with(PathOptions {
        gateway_recording: Some(
            RecordingConfig::default()
                .with_max_bytes(4)
                .with_max_input_bytes(6),
        ),
        ..PathOptions::default()
    })
    .await;
    let recording = exec_cat_base64(&path).await;
    assert_eq!(
        recording.channel(0),
        b"top se",
        "typed input kept to its cap"
    );
    assert!(
        recording.channel(1).is_empty(),
        "no output past the shared cap"
    );
    assert!(!recording.complete());
    assert_eq!(gaps(&recording), [(0, 6, 5), (1, 0, 11)]);
    path.shutdown().await;
}

/// A resource's own caps (set with `pam resource create --recording-max-bytes …`) win over the
/// gateway's settings for that resource's sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resources_recording_caps_override_the_gateways() {
    let path = InProcessPath::start_with(PathOptions {
        recording: RecordingPolicy::deny()
            .with_max_bytes(Some(0))
            .with_max_input_bytes(Some(3)),
        gateway_recording: Some(RecordingConfig::default().with_max_bytes(1024)),
        ..PathOptions::default()
    })
    .await;
    let recording = exec_cat_base64(&path).await;
    assert_eq!(recording.channel(0), b"top");
    assert!(recording.channel(1).is_empty());
    assert_eq!(gaps(&recording), [(0, 3, 8), (1, 0, 11)]);
    path.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_exec_offering_nothing_the_gateway_reads_is_refused() {
    let path = InProcessPath::start().await;
    let refused = offer_exec(&path, "x-private.example").await;
    assert_eq!(refused.status(), 403);
    let body = String::from_utf8_lossy(refused.body()).into_owned();
    assert!(body.contains("\"kind\":\"Status\""), "{body}");
    assert!(body.contains("cannot record"), "{body}");
    assert_eq!(exec_requests(&path), 0, "the cluster saw no exec");
    path.shutdown().await;
}

/// Offers `v5.channel.k8s.io` for a `cat` exec, through the whole path, to a double that answers
/// `101` with `answer` instead; returns the answer kubectl's side got.
async fn exec_answered_with(answer: &str) -> (InProcessPath, http::Response<bytes::Bytes>) {
    let path = InProcessPath::start_with(PathOptions {
        double: DoubleConfig {
            exec_subprotocol_answer: Some(answer.to_owned()),
            ..DoubleConfig::default()
        },
        ..PathOptions::default()
    })
    .await;
    let got = offer_exec(&path, "v5.channel.k8s.io").await;
    (path, got)
}

/// A WebSocket `cat` exec offering `protocol`, sent through the local proxy as one whole HTTP
/// exchange, not tungstenite's (its error keeps only the body bytes that arrived with the
/// status line, which under load can be none of them); returns the answer.
async fn offer_exec(path: &InProcessPath, protocol: &str) -> http::Response<bytes::Bytes> {
    let target = format!(
        "/api/v1/namespaces/default/pods/{}/exec?command=cat&stdin=true&stdout=true",
        first_pod()
    );
    let request = http::Request::get(target.as_str())
        .header(
            http::header::AUTHORIZATION,
            format!("Bearer {}", path.local_token.expose()),
        )
        .header(http::header::CONNECTION, "Upgrade")
        .header(http::header::UPGRADE, "websocket")
        .header(http::header::SEC_WEBSOCKET_VERSION, "13")
        .header(http::header::SEC_WEBSOCKET_KEY, "dGhlIHNhbXBsZSBub25jZQ==")
        .header(http::header::SEC_WEBSOCKET_PROTOCOL, protocol)
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .expect("a valid request");
    send_raw(&path.local_url, &path.local_ca_pem, request)
        .await
        .expect("the local proxy answered")
}

/// An API server that answers an exec's `101` with a subprotocol it was not offered (one the
/// recorder does not read, or a recorded one the client did not ask for) gets its stream cut:
/// the client gets a 502 saying why, never the `101`, so not a byte passes either way. One that
/// answers with no subprotocol at all (the old unversioned protocol, which the recorder does not
/// read) is refused as a stream the gateway cannot record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_server_switching_to_a_subprotocol_it_was_not_offered_is_cut() {
    let cases = [
        ("x-private.example", 502, "not offered"),
        ("base64.channel.k8s.io", 502, "not offered"),
        ("", 403, "cannot record this exec"),
    ];
    for (answer, status, says) in cases {
        let (path, got) = exec_answered_with(answer).await;
        assert_eq!(got.status(), status, "answered {answer:?}");
        let body = String::from_utf8_lossy(got.body()).into_owned();
        assert!(body.contains("\"kind\":\"Status\""), "{body}");
        assert!(body.contains(says) && body.contains(answer), "{body}");
        assert_eq!(exec_requests(&path), 1, "the exec reached the API server");
        assert!(finished_statuses(&path).contains(&status));
        let events = path.audit.events();
        let streamed = events.iter().any(|e| {
            matches!(
                e.kind,
                AuditEventKind::StreamOpened { .. }
                    | AuditEventKind::StreamDetails(_)
                    | AuditEventKind::StreamData(_)
            )
        });
        assert!(!streamed, "no stream was opened: {events:?}");
        // The API server's side of the stream is closed too.
        let mut open = path.double.open_streams();
        for _ in 0..100 {
            if open == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            open = path.double.open_streams();
        }
        assert_eq!(open, 0, "the API server's exec was left open");
        path.shutdown().await;
    }
}
