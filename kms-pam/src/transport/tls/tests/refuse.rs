//! Everything the gateway or the client refuses, and what each side sees of it.

use super::*;
use crate::tls::test_support::LogCapture;
use crate::tls::tunnel_client_config;
use crate::transport::TransportError;

/// The gateway fails the handshake: the client reads the alert as a refusal naming `hint`, the
/// acceptor yields nothing and counts one failed handshake.
async fn assert_handshake_refused(
    connector: TlsConnector,
    acceptor: &mut TlsTunnelAcceptor,
    hint: &str,
) {
    let stats = acceptor.stats();
    let err = first_read_after_connect(&connector)
        .await
        .expect_err("the gateway's alert should fail the first read");
    assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{err}");
    let refusal = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<TransportError>());
    assert!(
        matches!(refusal, Some(TransportError::Refused(m)) if m.to_string().contains(hint)),
        "{err}"
    );
    assert_nothing_accepted(acceptor).await;
    wait_for_count(
        &stats,
        "failed handshake",
        AcceptorStats::handshakes_failed,
        1,
    )
    .await;
    assert_eq!((stats.handshakes_ok(), stats.refused()), (0, 0));
}

#[tokio::test]
async fn client_without_certificate_is_refused() {
    let kms = Kms::new();
    let (mut acceptor, addr) = kms.gateway(HANDSHAKE_TIMEOUT).await;
    let name = ServerName::try_from(GATEWAY_HOST).unwrap();
    let connector = TlsConnector::new(addr, name, Arc::new(kms.anonymous_client()));
    assert_handshake_refused(connector, &mut acceptor, "requires a session certificate").await;
}

#[tokio::test]
async fn certificate_from_another_ca_is_refused() {
    let kms = Kms::new();
    let (mut acceptor, addr) = kms.gateway(HANDSHAKE_TIMEOUT).await;
    let rogue = CertificateAuthority::generate("kms-pam test CA", 24 * HOUR).unwrap();
    let now = SystemTime::now();
    let connector = kms.connector_for(
        &addr,
        &rogue,
        GATEWAY,
        now - Duration::from_secs(60),
        now + HOUR,
    );
    assert_handshake_refused(connector, &mut acceptor, REFUSED_CERT).await;
}

#[tokio::test]
async fn expired_certificate_is_refused() {
    let kms = Kms::new();
    let (mut acceptor, addr) = kms.gateway(HANDSHAKE_TIMEOUT).await;
    let now = SystemTime::now();
    let connector = kms.connector_for(
        &addr,
        &kms.ca,
        GATEWAY,
        now - 2 * HOUR,
        now - Duration::from_secs(1),
    );
    assert_handshake_refused(connector, &mut acceptor, REFUSED_CERT).await;
}

#[tokio::test]
async fn not_yet_valid_certificate_is_refused() {
    let kms = Kms::new();
    let (mut acceptor, addr) = kms.gateway(HANDSHAKE_TIMEOUT).await;
    let now = SystemTime::now();
    let connector = kms.connector_for(&addr, &kms.ca, GATEWAY, now + HOUR, now + 2 * HOUR);
    assert_handshake_refused(connector, &mut acceptor, REFUSED_CERT).await;
}

#[tokio::test]
async fn gateway_certificate_cannot_be_used_as_a_session_certificate() {
    let kms = Kms::new();
    let (mut acceptor, addr) = kms.gateway(HANDSHAKE_TIMEOUT).await;
    // A gateway's identity is a client certificate too (it dials relays with it), so TLS lets it
    // through; the identity check then finds no session in it.
    let connector = kms.connector(&addr, &kms.gateway_cert, &kms.gateway_key);
    let stats = acceptor.stats();
    let read = first_read_after_connect(&connector).await;
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert_nothing_accepted(&mut acceptor).await;
    wait_for_count(&stats, "refusal", AcceptorStats::refused, 1).await;
    assert_eq!(stats.handshakes_ok(), 0);
}

#[tokio::test]
async fn session_for_another_gateway_is_closed_without_being_yielded() {
    let kms = Kms::new();
    let (mut acceptor, addr) = kms.gateway(HANDSHAKE_TIMEOUT).await;
    let now = SystemTime::now();
    let connector = kms.connector_for(
        &addr,
        &kms.ca,
        "gw-other",
        now - Duration::from_secs(60),
        now + HOUR,
    );
    let stats = acceptor.stats();

    // Refused after a completed handshake: no alert exists for that, the client reads the end.
    let read = first_read_after_connect(&connector).await;
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert_nothing_accepted(&mut acceptor).await;
    wait_for_count(&stats, "refusal", AcceptorStats::refused, 1).await;
    assert_eq!((stats.handshakes_ok(), stats.handshakes_failed()), (0, 0));
}

#[tokio::test]
async fn tunnel_without_the_tunnel_protocol_is_refused_by_both_ends() {
    let kms = Kms::new();
    let (mut acceptor, addr) = kms.gateway(HANDSHAKE_TIMEOUT).await;
    let now = SystemTime::now();
    let (cert, key, _) = Kms::session(&kms.ca, GATEWAY, now - Duration::from_secs(60), now + HOUR);
    let no_protocol = tunnel_client_config(kms.ca.cert_pem(), &cert, key.key_pem(), &[]).unwrap();
    let name = ServerName::try_from(GATEWAY_HOST).unwrap();
    let connector = TlsConnector::new(addr, name, no_protocol);
    let stats = acceptor.stats();

    let err = within("connect", connector.connect()).await.err();
    assert!(
        matches!(&err, Some(TransportError::Refused(m)) if m.to_string().contains("kms-pam/1")),
        "{err:?}"
    );
    assert_nothing_accepted(&mut acceptor).await;
    wait_for_count(&stats, "refusal", AcceptorStats::refused, 1).await;
}

#[tokio::test]
async fn gateway_down_is_unreachable_and_names_the_address() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    let connector = Kms::new().valid_connector(&addr);
    let err = within("connect", connector.connect()).await.err();
    let expected = format!("cannot connect to gateway {addr}");
    assert!(
        matches!(&err, Some(TransportError::Unreachable(m)) if m.to_string().contains(&expected)),
        "{err:?}"
    );
}

#[tokio::test]
async fn gateway_with_another_name_or_ca_is_not_trusted() {
    let kms = Kms::new();
    let (_acceptor, addr) = kms.gateway(HANDSHAKE_TIMEOUT).await;
    let now = SystemTime::now();
    let (cert, key, _) = Kms::session(&kms.ca, GATEWAY, now - Duration::from_secs(60), now + HOUR);
    let config =
        tunnel_client_config(kms.ca.cert_pem(), &cert, key.key_pem(), &[TUNNEL_ALPN]).unwrap();
    let wrong_name = ServerName::try_from("other.test").unwrap();
    let connector = TlsConnector::new(addr, wrong_name, config);
    let err = within("connect", connector.connect()).await.err();
    assert!(
        matches!(&err, Some(TransportError::Refused(m)) if m.to_string().contains("not trusted")),
        "{err:?}"
    );

    let other = Kms::new();
    let (_foreign, foreign_addr) = other.gateway(HANDSHAKE_TIMEOUT).await;
    let err = within("connect", kms.valid_connector(&foreign_addr).connect())
        .await
        .err();
    assert!(
        matches!(&err, Some(TransportError::Refused(m)) if m.to_string().contains("not trusted")),
        "{err:?}"
    );
}

/// Connects from `source` and sends bytes that are not a ClientHello; the gateway fails the
/// handshake at once.
async fn fail_a_handshake(source: &str, gateway: std::net::SocketAddr) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let mut tcp = socket.connect(gateway).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 64];
    let _ = timeout(PATIENCE, tcp.read(&mut buf)).await;
}

/// The acceptor logs through `conn::LogLimiter`: 200 failed handshakes from one address write
/// one WARN line, another address has its own; after the period the next line says how many
/// were skipped.
#[tokio::test]
async fn failed_handshakes_are_logged_once_per_source_and_period_with_the_count_skipped() {
    const LINE: &str = "tunnel TLS handshake failed";
    let captured = LogCapture::default();
    // The test's runtime has one thread: the acceptor's tasks log through this subscriber.
    let _guard = tracing::subscriber::set_default(captured.subscriber());
    let kms = Kms::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway = listener.local_addr().unwrap();
    let period = Duration::from_secs(3);
    let acceptor = TlsTunnelAcceptor::with_limits(
        listener,
        kms.server_config(),
        GATEWAY.to_owned(),
        HANDSHAKE_TIMEOUT,
        period,
    );
    let stats = acceptor.stats();
    let started = tokio::time::Instant::now();
    for _ in 0..200 {
        fail_a_handshake("127.0.0.1", gateway).await;
    }
    fail_a_handshake("127.0.0.2", gateway).await;
    wait_for_count(
        &stats,
        "failed handshakes",
        AcceptorStats::handshakes_failed,
        201,
    )
    .await;
    assert!(
        started.elapsed() < period,
        "the burst took {:?}, longer than the period under test",
        started.elapsed()
    );
    let lines = captured.lines_with(LINE);
    assert_eq!(lines.len(), 2, "one line per source: {lines:#?}");
    assert!(
        lines[0].contains("WARN") && lines[0].contains("peer=127.0.0.1:"),
        "{lines:#?}"
    );
    assert!(lines[0].contains("suppressed_since_last=0"), "{lines:#?}");
    assert!(lines[1].contains("peer=127.0.0.2:"), "{lines:#?}");

    // The period runs from the first logged failure, which came after `started`: wait a whole
    // period from now (after it) so the next failure falls in a new one, however slow the burst.
    tokio::time::sleep(period).await;
    fail_a_handshake("127.0.0.1", gateway).await;
    wait_for_count(
        &stats,
        "failed handshakes",
        AcceptorStats::handshakes_failed,
        202,
    )
    .await;
    let lines = captured.lines_with(LINE);
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(
        lines[2].contains("peer=127.0.0.1:") && lines[2].contains("suppressed_since_last=199"),
        "the next line counts what was skipped: {lines:#?}"
    );
}
