//! Tunnels that open, concurrency, timeouts and shutdown of the acceptor.

use super::*;
use crate::session::SessionId;
use crate::transport::tls::acceptor::{authenticate, Refusal};
use crate::transport::{BoxedIo, TransportError};

#[tokio::test]
async fn session_certificate_opens_a_tunnel_naming_the_session() {
    let kms = Kms::new();
    let (mut acceptor, addr) = kms.gateway(HANDSHAKE_TIMEOUT).await;
    let now = SystemTime::now();
    let (cert, key, spec) =
        Kms::session(&kms.ca, GATEWAY, now - Duration::from_secs(60), now + HOUR);
    let connector = kms.connector(&addr, &cert, key.key_pem());

    let mut client: BoxedIo = within("connect", connector.connect()).await.unwrap();
    let mut tunnel = within("accept", acceptor.accept()).await.unwrap();

    assert_eq!(tunnel.peer.session_id, SessionId::new("s-1"));
    let whole_seconds = spec.not_after.duration_since(UNIX_EPOCH).unwrap().as_secs();
    let expected_not_after = UNIX_EPOCH + Duration::from_secs(whole_seconds);
    assert_eq!(tunnel.peer.not_after, Some(expected_not_after));
    let remote = tunnel.peer.remote_addr.unwrap();
    assert!(remote.ip().is_loopback());

    client.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    within("gateway read", tunnel.io.read_exact(&mut buf))
        .await
        .unwrap();
    assert_eq!(&buf, b"ping");
    tunnel.io.write_all(b"pong").await.unwrap();
    within("client read", client.read_exact(&mut buf))
        .await
        .unwrap();
    assert_eq!(&buf, b"pong");

    let stats = acceptor.stats();
    assert_eq!(
        (
            stats.handshakes_ok(),
            stats.handshakes_failed(),
            stats.refused()
        ),
        (1, 0, 0)
    );
}

#[tokio::test]
async fn silent_client_neither_blocks_others_nor_holds_its_slot() {
    let kms = Kms::new();
    let (mut acceptor, addr) = kms.gateway(Duration::from_millis(500)).await;
    let mut silent = TcpStream::connect(&addr).await.unwrap();

    // Handshakes run concurrently: a valid client gets through while the silent one waits.
    let _client = within("connect", kms.valid_connector(&addr).connect())
        .await
        .unwrap();
    within("accept", acceptor.accept()).await.unwrap();

    let mut byte = [0u8; 1];
    let read = within("silent client closed", silent.read(&mut byte)).await;
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    let stats = acceptor.stats();
    wait_for_count(
        &stats,
        "timed-out handshake",
        AcceptorStats::handshakes_failed,
        1,
    )
    .await;
    assert_eq!(stats.handshakes_ok(), 1);
}

#[tokio::test]
async fn connector_gives_up_on_a_gateway_that_never_answers() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let mut connector = Kms::new().valid_connector(&addr);
    connector.handshake_timeout = Duration::from_millis(200);
    let err = within("connect", connector.connect()).await.err();
    let expected = "did not complete the TLS handshake";
    assert!(
        matches!(&err, Some(TransportError::Unreachable(m)) if m.to_string().contains(expected)),
        "{err:?}"
    );
    drop(listener);
}

#[tokio::test]
async fn dropping_the_acceptor_closes_the_listener() {
    let kms = Kms::new();
    let (acceptor, addr) = kms.gateway(HANDSHAKE_TIMEOUT).await;
    drop(acceptor);
    within("listener closed", async {
        while TcpStream::connect(&addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

#[test]
fn identity_check_refuses_what_is_not_a_session_of_this_gateway() {
    let kms = Kms::new();
    let gateway_der = CertificateDer::from_pem_slice(kms.gateway_cert.as_bytes()).unwrap();
    let now = SystemTime::now();
    let (cert, _, _) = Kms::session(&kms.ca, GATEWAY, now, now + HOUR);
    let session_der = CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
    let alpn = Some(TUNNEL_ALPN);

    let refused = |alpn, certs: Option<&[CertificateDer<'_>]>, gateway| {
        authenticate(alpn, certs, gateway).unwrap_err()
    };
    assert!(matches!(
        refused(None, Some(std::slice::from_ref(&session_der)), GATEWAY),
        Refusal::NoProtocol
    ));
    assert!(matches!(
        refused(alpn, None, GATEWAY),
        Refusal::NoCertificate
    ));
    assert!(matches!(
        refused(alpn, Some(&[]), GATEWAY),
        Refusal::NoCertificate
    ));
    assert!(matches!(
        refused(alpn, Some(std::slice::from_ref(&gateway_der)), GATEWAY),
        Refusal::NotASession(_)
    ));
    let other = refused(alpn, Some(std::slice::from_ref(&session_der)), "gw-2");
    assert!(matches!(other, Refusal::OtherGateway { .. }));
    assert!(other.to_string().contains("alice"), "{other}");

    let identity = authenticate(alpn, Some(std::slice::from_ref(&session_der)), GATEWAY).unwrap();
    assert_eq!(identity.session_id, "s-1");
}
