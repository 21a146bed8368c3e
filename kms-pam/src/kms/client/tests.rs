//! The client against a tiny HTTP server answering canned responses.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::*;
use crate::kms::api::{CreateAccount, ErrorCode, GatewayReach};
use crate::secret::Secret;
use crate::session::SessionId;

/// What the fake KMS saw of one request.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    uri: String,
    authorization: Option<String>,
    body: String,
}

/// Serves `(status, body)` for every request and records what came in.
async fn fake_kms(status: u16, answer: &'static str) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let log = log.clone();
            let service = service_fn(move |request: Request<Incoming>| {
                let log = log.clone();
                async move {
                    let (parts, body) = request.into_parts();
                    let body = body.collect().await.unwrap().to_bytes();
                    log.lock().unwrap().push(Seen {
                        method: parts.method.to_string(),
                        uri: parts.uri.to_string(),
                        authorization: parts
                            .headers
                            .get("authorization")
                            .map(|v| v.to_str().unwrap().to_owned()),
                        body: String::from_utf8_lossy(&body).into_owned(),
                    });
                    let response = Response::builder()
                        .status(StatusCode::from_u16(status).unwrap())
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from_static(answer.as_bytes())))
                        .unwrap();
                    Ok::<_, Infallible>(response)
                }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    (url, seen)
}

fn client(url: &str) -> KmsClient {
    KmsClient::new(url, Some(Secret::new("kmsu_test-token"))).unwrap()
}

#[tokio::test]
async fn whoami_sends_the_bearer_token_and_decodes_the_answer() {
    let (url, seen) = fake_kms(200, r#"{"name":"alice","kind":"user","admin":true}"#).await;
    let me = client(&url).whoami().await.unwrap();
    assert_eq!((me.name.as_str(), me.admin), ("alice", true));
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].uri, "/v1/whoami");
    assert_eq!(
        seen[0].authorization.as_deref(),
        Some("Bearer kmsu_test-token")
    );
}

#[tokio::test]
async fn api_errors_keep_status_code_and_message() {
    let body = r#"{"error":{"code":"not_found","message":"resource prod not found"}}"#;
    let (url, _) = fake_kms(404, body).await;
    let err = client(&url).resources().get("prod").await.unwrap_err();
    match &err {
        KmsError::Api {
            status,
            code,
            message,
        } => {
            assert_eq!(*status, 404);
            assert_eq!(*code, ErrorCode::NotFound);
            assert_eq!(message, "resource prod not found");
        }
        other => panic!("expected an API error, got {other:?}"),
    }
    assert!(err.is_not_found());
}

#[tokio::test]
async fn an_error_without_an_api_body_is_a_protocol_error() {
    let (url, _) = fake_kms(502, "<html>bad gateway</html>").await;
    let err = client(&url).users().list().await.unwrap_err();
    assert!(matches!(err, KmsError::NotKms { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("GET /v1/users answered HTTP 502"), "{text}");
}

#[tokio::test]
async fn a_success_with_the_wrong_shape_is_a_protocol_error() {
    let (url, _) = fake_kms(200, r#"{"unexpected":true}"#).await;
    let err = client(&url).whoami().await.unwrap_err();
    assert!(matches!(err, KmsError::UnexpectedAnswer { .. }), "{err:?}");
    assert!(err.to_string().contains("GET /v1/whoami"), "{err}");
}

#[tokio::test]
async fn a_closed_port_is_unreachable_with_a_plain_reason() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let err = client(&url).whoami().await.unwrap_err();
    assert!(err.is_transient());
    assert_eq!(err.connection_failure(), Some(ConnectionFailure::Refused));
    assert_eq!(
        err.to_string(),
        format!("cannot reach KMS at {url}: connection refused")
    );
}

/// A KMS that never answers is a timeout, told apart by type rather than by its message.
#[tokio::test(start_paused = true)]
async fn a_silent_kms_is_a_timeout() {
    // Connections complete into the backlog; nothing ever reads or answers them.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let err = client(&url).whoami().await.unwrap_err();
    assert_eq!(
        err.connection_failure(),
        Some(ConnectionFailure::Timeout),
        "{err:?}"
    );
    assert!(err.is_transient());
    drop(listener);
}

#[tokio::test]
async fn names_are_encoded_as_single_path_segments_and_filters_as_query() {
    let (url, seen) = fake_kms(200, "[]").await;
    let kms = client(&format!("{url}/prefix/"));
    kms.accounts().list(Some("prod k8s")).await.unwrap();
    let filter = SessionFilter {
        active: true,
        user: Some("al&ice".into()),
        resource: None,
    };
    kms.sessions().list(&filter).await.unwrap();
    let _ = kms.resources().get("a/b").await;
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].uri, "/prefix/v1/accounts?resource=prod+k8s");
    assert_eq!(seen[1].uri, "/prefix/v1/sessions?active=true&user=al%26ice");
    assert_eq!(seen[2].uri, "/prefix/v1/resources/a%2Fb");
}

#[tokio::test]
async fn bodies_are_json_and_empty_answers_are_fine() {
    let (url, seen) = fake_kms(204, "").await;
    let kms = client(&url);
    kms.accounts().delete("prod", "admin").await.unwrap();
    kms.sessions()
        .end(&SessionId::new("s-1"))
        .await
        .unwrap_err();
    let account = CreateAccount {
        name: "admin".into(),
        token: "sa-token".into(),
        description: None,
        max_duration_secs: Some(3600),
    };
    // 204 has no JSON to decode: a protocol error, but the request went out as JSON.
    let _ = kms.accounts().create("prod", &account).await;
    kms.gateway()
        .heartbeat("10.0.0.5:8443", &GatewayReach::default())
        .await
        .unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].method, "DELETE");
    assert_eq!(seen[0].uri, "/v1/resources/prod/accounts/admin");
    assert_eq!(seen[1].uri, "/v1/sessions/s-1/end");
    let sent: serde_json::Value = serde_json::from_str(&seen[2].body).unwrap();
    assert_eq!(sent["name"], "admin");
    assert_eq!(
        sent["token"], "sa-token",
        "the token goes out as a plain string"
    );
    assert_eq!(sent["max_duration_secs"], 3600);
    assert_eq!(seen[3].uri, "/v1/gateway/heartbeat");
}

#[tokio::test]
async fn changes_asks_for_at_most_thirty_seconds() {
    let (url, seen) = fake_kms(200, r#"{"seq":7,"changes":[]}"#).await;
    let changes = client(&url).gateway().changes(3, 600).await.unwrap();
    assert_eq!(changes.seq, 7);
    assert_eq!(
        seen.lock().unwrap()[0].uri,
        "/v1/gateway/changes?after=3&wait_secs=30"
    );
}

#[tokio::test]
async fn without_a_token_no_authorization_is_sent() {
    let (url, seen) = fake_kms(200, r#"{"status":"ok"}"#).await;
    KmsClient::new(&url, None).unwrap().healthz().await.unwrap();
    assert_eq!(seen.lock().unwrap()[0].authorization, None);
}

#[test]
fn unusable_urls_and_tokens_are_refused_up_front() {
    for bad in [
        "",
        "localhost:8080",
        "ftp://kms",
        "http://kms/?x=1",
        "kms.example.com",
    ] {
        let err = KmsClient::new(bad, None).unwrap_err();
        assert!(matches!(err, KmsError::InvalidUrl { .. }), "{bad}: {err:?}");
    }
    let err = KmsClient::new("https://kms", Some(Secret::new("line\nbreak"))).unwrap_err();
    assert!(matches!(err, KmsError::InvalidToken));
    assert!(!err.to_string().contains("break"));
}

#[test]
fn debug_never_shows_the_token() {
    let kms = client("https://kms.example.com/");
    let debug = format!("{kms:?}");
    assert!(!debug.contains("kmsu_test-token"), "{debug}");
    assert_eq!(kms.base_url(), "https://kms.example.com");
}

#[tokio::test]
async fn a_client_in_a_project_scopes_only_the_projects_calls() {
    let (url, seen) = fake_kms(200, "[]").await;
    let plain = client(&url);
    let scoped = plain.in_project("team a");
    assert_eq!(scoped.project(), Some("team a"));
    plain.resources().list().await.unwrap();
    scoped.resources().list().await.unwrap();
    scoped
        .sessions()
        .list(&SessionFilter {
            active: true,
            ..SessionFilter::default()
        })
        .await
        .unwrap();
    scoped.gateways().list().await.unwrap();
    scoped.projects().list().await.unwrap();
    let uris: Vec<String> = seen.lock().unwrap().iter().map(|s| s.uri.clone()).collect();
    assert_eq!(
        uris,
        [
            "/v1/resources",
            "/v1/projects/team%20a/resources",
            "/v1/projects/team%20a/sessions?active=true",
            "/v1/gateways",
            "/v1/projects",
        ]
    );
}

/// A URL where nothing listens (a port bound, then let go).
async fn refusing_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

/// A URL whose server reads each request and hangs up without answering (a replica killed
/// while it held the call). Counts the requests it swallowed.
async fn cutting_url() -> (String, Arc<Mutex<usize>>) {
    use tokio::io::AsyncReadExt;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(Mutex::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            if tcp.read(&mut buf).await.unwrap_or(0) > 0 {
                *seen.lock().unwrap() += 1;
            }
            drop(tcp);
        }
    });
    (url, count)
}

#[tokio::test]
async fn a_refused_connection_sends_the_call_to_the_next_url_which_then_sticks() {
    let down = refusing_url().await;
    let (up, seen) = fake_kms(200, r#"{"name":"alice","kind":"user","admin":true}"#).await;
    let kms = client(&format!("{down},{up}"));
    assert_eq!(kms.base_url(), format!("{down},{up}"));
    assert_eq!(kms.current_url(), down);
    assert_eq!(kms.whoami().await.unwrap().name, "alice");
    assert_eq!(
        kms.current_url(),
        up,
        "the replica that answered is used next"
    );
    // A POST too: a refused connection means the request was never sent.
    // The console link points at the replica that answered.
    let (up_post, seen_post) = fake_kms(201, r#"{"path":"/login/link/c1"}"#).await;
    let posting = client(&format!("{down},{up_post}"));
    let link = posting.console().link().await.unwrap();
    assert_eq!(link, format!("{up_post}/login/link/c1"));
    assert_eq!(seen_post.lock().unwrap()[0].method, "POST");
    // Clones share the replica in use.
    let clone = kms.in_project("p");
    assert_eq!(clone.current_url(), up);
    kms.whoami().await.unwrap();
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn an_http_error_answer_is_the_answer_no_failover() {
    let (url_a, seen_a) = fake_kms(
        503,
        r#"{"error":{"code":"unavailable","message":"database down"}}"#,
    )
    .await;
    let (url_b, seen_b) = fake_kms(200, r#"{"name":"alice","kind":"user","admin":true}"#).await;
    let kms = client(&format!("{url_a},{url_b}"));
    let err = kms.whoami().await.unwrap_err();
    assert_eq!(err.status(), Some(503), "{err}");
    let (url_c, _) = fake_kms(404, r#"{"error":{"code":"not_found","message":"no"}}"#).await;
    let err = client(&format!("{url_c},{url_b}"))
        .whoami()
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert_eq!(seen_a.lock().unwrap().len(), 1);
    assert!(seen_b.lock().unwrap().is_empty(), "B was never asked");
    assert_eq!(kms.current_url(), url_a);
}

#[tokio::test]
async fn a_cut_after_sending_retries_reads_but_not_writes() {
    let (cut, swallowed) = cutting_url().await;
    let (up, seen) = fake_kms(200, r#"{"name":"alice","kind":"user","admin":true}"#).await;
    let kms = client(&format!("{cut},{up}"));
    kms.whoami().await.unwrap();
    assert_eq!(*swallowed.lock().unwrap(), 1);
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "the GET went on to the next URL"
    );

    let writes = client(&format!("{cut},{up}"));
    let err = writes
        .sessions()
        .end(&SessionId::new("s1"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, KmsError::Unreachable { ref url, .. } if *url == cut),
        "{err:?}"
    );
    assert_eq!(*swallowed.lock().unwrap(), 2);
    assert_eq!(seen.lock().unwrap().len(), 1, "the POST was not sent twice");
    assert_eq!(
        writes.current_url(),
        up,
        "the next call starts at the next URL"
    );
}

#[tokio::test]
async fn when_every_url_is_down_the_error_names_them_all() {
    let (a, b) = (refusing_url().await, refusing_url().await);
    let err = client(&format!("{a},{b}")).whoami().await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("cannot reach KMS at {a}, {b}: connection refused")
    );
    assert!(err.is_transient());
    assert_eq!(err.connection_failure(), Some(ConnectionFailure::Refused));
}

/// This machine's address on its default route (not loopback), if it has one: the UDP
/// "connection" sends nothing, it only picks the source address.
fn non_loopback_ip() -> Option<std::net::IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

/// An attacker on the path reads whatever crosses plain HTTP: a client given `http://` to
/// another host refuses before it connects, saying why and what to do.
#[tokio::test]
async fn plain_http_to_another_host_is_refused_before_anything_is_sent() {
    let listener = TcpListener::bind("0.0.0.0:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let host = non_loopback_ip().map_or_else(|| "kms.example.com".to_owned(), |ip| ip.to_string());
    let url = format!("http://{host}:{port}");
    for urls in [url.clone(), format!("https://kms.example.com,{url}")] {
        let err = KmsClient::new(&urls, Some(Secret::new("kmsu_secret"))).unwrap_err();
        assert!(matches!(err, KmsError::PlainHttp { .. }), "{err:?}");
        let text = err.to_string();
        for part in [
            url.as_str(),
            "in clear",
            "https://",
            "--insecure-http",
            "--kms-ca",
        ] {
            assert!(text.contains(part), "{part}: {text}");
        }
        assert!(!text.contains("kmsu_secret"), "{text}");
    }
    let err = KmsClient::with_options(&url, None, &KmsClientOptions::new()).unwrap_err();
    assert!(matches!(err, KmsError::PlainHttp { .. }), "{err:?}");
    let accepted = tokio::time::timeout(std::time::Duration::from_millis(300), listener.accept());
    assert!(accepted.await.is_err(), "the refused client connected");
    // Told so, it may (a lab); loopback never needed telling.
    let lab = KmsClient::with_options(
        &url,
        None,
        &KmsClientOptions::new().with_insecure_http(true),
    );
    assert!(lab.is_ok());
    assert!(KmsClient::new(&format!("http://127.0.0.1:{port}"), None).is_ok());
}
