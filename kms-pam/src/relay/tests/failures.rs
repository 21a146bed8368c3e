//! What the relay refuses, and how each refusal reads on the CLI's side.

use http::{Method, Request};
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::super::table::TunnelSender;
use super::*;
use crate::tls::{tunnel_client_config, tunnel_server_config, TUNNEL_ALPN};

fn refused(result: Result<crate::transport::BoxedIo, TransportError>) -> String {
    match result {
        Err(TransportError::Refused(why)) => why.to_string(),
        Err(other) => panic!("expected a refusal, got {other}"),
        Ok(_) => panic!("expected a refusal, got a tunnel"),
    }
}

fn unreachable(result: Result<crate::transport::BoxedIo, TransportError>) -> String {
    match result {
        Err(TransportError::Unreachable(why)) => why.to_string(),
        Err(other) => panic!("expected unreachable, got {other}"),
        Ok(_) => panic!("expected unreachable, got a tunnel"),
    }
}

#[tokio::test]
async fn a_relay_that_lacks_the_gateway_says_gateway_offline() {
    let kms = Kms::new();
    let relay = kms.relay("edge").await;
    let granted = kms.grant("gw-a", HOUR).await;
    let why = unreachable(
        kms.connector(&granted, "gw-a", &[&relay.addr])
            .connect()
            .await,
    );
    assert!(why.contains("gateway gw-a is offline there"), "{why}");
    assert!(why.contains("no tunnel to relay edge"), "{why}");
    let none = unreachable(kms.connector(&granted, "gw-a", &[]).connect().await);
    assert!(none.contains("none holds it now"), "{none}");
}

#[tokio::test]
async fn a_certificate_for_gateway_a_cannot_reach_gateway_b() {
    let kms = Kms::new();
    let relay = kms.relay("edge").await;
    let gateway_b = kms.gateway("gw-b", &[&relay.addr]);
    let links = gateway_b.links();
    let (mut peers, _echo) = echo(gateway_b);
    connected(&links, 1).await;
    let granted = kms.grant("gw-a", HOUR).await;
    let why = refused(
        kms.connector(&granted, "gw-b", &[&relay.addr])
            .connect()
            .await,
    );
    assert!(
        why.contains(r#"is for gateway "gw-a", not "gw-b""#),
        "{why}"
    );
    assert!(
        timeout(QUIET, peers.recv()).await.is_err(),
        "gateway b saw nothing"
    );
}

#[tokio::test]
async fn revoked_and_ended_sessions_are_refused_before_any_inner_byte() {
    let kms = Kms::new();
    let relay = kms.relay("edge").await;
    let gateway = kms.gateway("gw-a", &[&relay.addr]);
    let links = gateway.links();
    let (mut peers, _echo) = echo(gateway);
    connected(&links, 1).await;
    // The relay routes to the gateway once its HTTP/2 handshake is done, just after the gateway
    // counts the tunnel up: wait for that with a session of its own.
    let probe = kms.grant("gw-a", HOUR).await;
    let mut probed = connect_soon(&kms.connector(&probe, "gw-a", &[&relay.addr])).await;
    round_trip(&mut probed, "probe").await;
    let seen = timeout(PATIENCE, peers.recv()).await.unwrap().unwrap();
    assert_eq!(seen.session_id, probe.session.id);
    let granted = kms.grant("gw-a", HOUR).await;
    kms.sessions.terminate(&granted.session.id).await.unwrap();
    let why = refused(
        kms.connector(&granted, "gw-a", &[&relay.addr])
            .connect()
            .await,
    );
    assert!(why.contains("session ended or revoked"), "{why}");
    assert!(why.contains("terminated"), "{why}");
    assert!(
        timeout(QUIET, peers.recv()).await.is_err(),
        "no tunnel reached the proxy"
    );
}

#[tokio::test]
async fn a_relayed_stream_is_cut_when_the_session_certificate_expires() {
    let kms = Kms::new();
    let relay = kms.relay("edge").await;
    let gateway = kms.gateway("gw-a", &[&relay.addr]);
    let links = gateway.links();
    let _echo = echo(gateway);
    connected(&links, 1).await;
    // X.509 keeps whole seconds: 3 s from now is 2 to 3 s of validity.
    let granted = kms.grant("gw-a", Duration::from_secs(3)).await;
    let mut io = connect_soon(&kms.connector(&granted, "gw-a", &[&relay.addr])).await;
    round_trip(&mut io, "before expiry").await;
    let expires = granted.session.expires_at;
    let mut buf = [0u8; 16];
    let ended = timeout(PATIENCE, io.read(&mut buf))
        .await
        .expect("the stream was not cut");
    assert!(matches!(ended, Ok(0) | Err(_)), "{ended:?}");
    let late = SystemTime::now()
        .duration_since(expires)
        .unwrap_or_default();
    assert!(late <= Duration::from_secs(1), "cut {late:?} after expiry");
}

#[tokio::test]
async fn a_relay_with_a_wrong_certificate_is_refused_by_cli_and_gateway() {
    let kms = Kms::new();
    let other = Kms::new();
    // Signed by another CA.
    let stranger = kms
        .relay_with(RelayConfig::new("evil", other.relay_tls("evil")))
        .await;
    let gateway = kms.gateway("gw-a", &[&stranger.addr]);
    let links = gateway.links();
    let _echo = echo(gateway);
    let granted = kms.grant("gw-a", HOUR).await;
    let why = unreachable(
        kms.connector(&granted, "gw-a", &[&stranger.addr])
            .connect()
            .await,
    );
    assert!(why.contains("not trusted"), "{why}");
    tokio::time::sleep(QUIET).await;
    assert_eq!(links.connected(), 0, "the gateway refused the relay too");

    // Signed by the right CA, but a gateway's certificate: it cannot pose as a relay.
    let (key, csr) = generate_csr("gw-x").unwrap();
    let names = ["127.0.0.1".to_owned()];
    let cert = kms.ca.sign_gateway_csr(&csr, "gw-x", &names, HOUR).unwrap();
    let posing = RelayConfig::new("posing", RelayTls::new(kms.ca.cert_pem(), cert, key));
    let posing = kms.relay_with(posing).await;
    let why = unreachable(
        kms.connector(&granted, "gw-a", &[&posing.addr])
            .connect()
            .await,
    );
    assert!(why.contains("not a kms-pam relay"), "{why}");
    let gateway = kms.gateway("gw-a", &[&posing.addr]);
    tokio::time::sleep(QUIET).await;
    assert_eq!(gateway.links().connected(), 0);
}

#[tokio::test]
async fn an_overloaded_relay_says_when_to_retry() {
    let kms = Kms::new();
    let mut config = RelayConfig::new("small", kms.relay_tls("small"));
    config.max_streams = 0;
    let relay = kms.relay_with(config).await;
    let granted = kms.grant("gw-a", HOUR).await;
    let why = unreachable(
        kms.connector(&granted, "gw-a", &[&relay.addr])
            .connect()
            .await,
    );
    assert!(
        why.contains("overloaded") && why.contains("retry in 5 s"),
        "{why}"
    );
}

#[tokio::test]
async fn garbage_after_the_handshake_is_refused_without_harm() {
    let kms = Kms::new();
    let relay = kms.relay("edge").await;
    let granted = kms.grant("gw-a", HOUR).await;
    let config = tunnel_client_config(
        kms.ca.cert_pem(),
        &granted.cert,
        granted.key.key_pem(),
        &[CLIENT_ALPN],
    )
    .unwrap();
    let tcp = TcpStream::connect(&relay.addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .unwrap();
    tls.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let mut buf = Vec::new();
    let read = timeout(PATIENCE, tls.read_to_end(&mut buf)).await.unwrap();
    assert!(
        read.is_err() || buf.is_empty(),
        "no status for a stranger: {buf:?}"
    );
    // The relay still serves.
    let why = unreachable(
        kms.connector(&granted, "gw-a", &[&relay.addr])
            .connect()
            .await,
    );
    assert!(why.contains("offline there"), "{why}");
}

/// A relay that lies, for the gateway that dialled `listener`: whatever it asks over the
/// returned sender, no honest relay would.
async fn liar(kms: &Kms, listener: &TcpListener) -> TunnelSender {
    let relay_tls = kms.relay_tls("liar");
    let server = tunnel_server_config(
        &relay_tls.ca_pem,
        &relay_tls.cert_pem,
        &relay_tls.key,
        &[GATEWAY_ALPN],
    )
    .unwrap();
    let (tcp, _) = listener.accept().await.unwrap();
    let tls = tokio_rustls::TlsAcceptor::from(server)
        .accept(tcp)
        .await
        .unwrap();
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    sender
}

/// The `CONNECT` a relay sends for a CLI that authenticated with `granted`'s certificate.
async fn connect_as(
    sender: &mut TunnelSender,
    granted: &Granted,
) -> http::Response<hyper::body::Incoming> {
    let der = crate::tls::parse_certs(&granted.cert).unwrap().remove(0);
    let request = Request::builder()
        .method(Method::CONNECT)
        .uri("session.kms-pam:443")
        .header(headers::SESSION, granted.session.id.as_str())
        .header(headers::CLIENT_CERT, fingerprint(&der))
        .body(http_body_util::Empty::new())
        .unwrap();
    sender.send_request(request).await.unwrap()
}

/// A relay that misroutes: a session certificate for gateway A sent to gateway B, which
/// refuses it before any inner byte (and would again at the inner handshake).
#[tokio::test]
async fn a_session_for_gateway_a_routed_to_gateway_b_is_refused_by_b() {
    let kms = Kms::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let gateway_b = kms.gateway("gw-b", &[&addr]);
    let (mut peers, _echo) = echo(gateway_b);
    let for_a = kms.grant("gw-a", HOUR).await;
    let mut sender = liar(&kms, &listener).await;
    let response = connect_as(&mut sender, &for_a).await;
    assert_eq!(response.status(), http::StatusCode::FORBIDDEN);
    let status = headers::refusal(response.headers());
    assert_eq!(status.code, RelayCode::Forbidden);
    assert!(
        status.message.contains("not for gateway gw-b"),
        "{}",
        status.message
    );
    assert!(
        timeout(QUIET, peers.recv()).await.is_err(),
        "no tunnel reached the proxy"
    );
}

/// A relay that lies: it authenticates one session certificate outside and lets another one
/// in. The gateway compares the certificate inside with the relay's word and refuses.
#[tokio::test]
async fn the_gateway_refuses_an_inner_certificate_the_relay_did_not_authenticate() {
    let kms = Kms::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let gateway = kms.gateway("gw-a", &[&addr]);
    let (mut peers, _echo) = echo(gateway);
    let outside = kms.grant("gw-a", HOUR).await;
    let inside = kms.grant("gw-a", HOUR).await;

    let mut sender = liar(&kms, &listener).await;
    let response = connect_as(&mut sender, &outside).await;
    assert_eq!(response.status(), http::StatusCode::OK);
    let upgraded = hyper::upgrade::on(response).await.unwrap();
    let client = tunnel_client_config(
        kms.ca.cert_pem(),
        &inside.cert,
        inside.key.key_pem(),
        &[TUNNEL_ALPN],
    )
    .unwrap();
    let name = rustls_pki_types::ServerName::try_from("gw-a.test").unwrap();
    let handshake = tokio_rustls::TlsConnector::from(client).connect(name, TokioIo::new(upgraded));
    let mut inner = timeout(PATIENCE, handshake).await.unwrap().unwrap();
    // TLS 1.3: the client finishes first; the gateway's refusal shows as the stream ending.
    let _ = inner.write_all(b"hello").await;
    let mut buf = [0u8; 8];
    let read = timeout(PATIENCE, inner.read(&mut buf)).await.unwrap();
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(
        timeout(QUIET, peers.recv()).await.is_err(),
        "no tunnel reached the proxy"
    );
}
