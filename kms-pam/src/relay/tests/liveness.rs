//! Tunnels that die, hang, restart or drain, and what CLIs see meanwhile.

use super::*;

#[tokio::test]
async fn a_black_holed_gateway_goes_offline_and_comes_back_without_an_operator() {
    let kms = Kms::new();
    let relay = kms.relay("edge").await;
    let hole = Tap::start(relay.addr.clone()).await;
    let gateway = kms.gateway("gw-a", &[&hole.addr]);
    let links = gateway.links();
    let _echo = echo(gateway);
    connected(&links, 1).await;
    let granted = kms.grant("gw-a", HOUR).await;
    let connector = kms.connector(&granted, "gw-a", &[&relay.addr]);
    let mut io = connect_soon(&connector).await;
    round_trip(&mut io, "before").await;

    // No RST, no FIN: packets just stop.
    hole.paused.store(true, Ordering::Relaxed);
    timeout(PATIENCE, async {
        loop {
            match connector.connect().await {
                Err(TransportError::Unreachable(why)) if why.to_string().contains("offline") => {
                    return
                }
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    })
    .await
    .expect("the relay never gave the black-holed tunnel up");
    connected(&links, 0).await;

    hole.paused.store(false, Ordering::Relaxed);
    connected(&links, 1).await;
    let mut io = connect_soon(&connector).await;
    round_trip(&mut io, "after").await;
}

#[tokio::test]
async fn a_restarted_gateway_replaces_its_half_open_tunnel_at_once() {
    let kms = Kms::new();
    let relay = kms.relay("edge").await;
    let hole = Tap::start(relay.addr.clone()).await;
    let old = kms.gateway("gw-a", &[&hole.addr]);
    let old_links = old.links();
    let (mut old_peers, _old_echo) = echo(old);
    connected(&old_links, 1).await;
    // The old instance's tunnel goes half-open; the new instance dials the relay directly.
    hole.paused.store(true, Ordering::Relaxed);
    let new = kms.gateway("gw-a", &[&relay.addr]);
    let new_links = new.links();
    let (mut new_peers, _new_echo) = echo(new);
    connected(&new_links, 1).await;

    let granted = kms.grant("gw-a", HOUR).await;
    let connector = kms.connector(&granted, "gw-a", &[&relay.addr]);
    // At once: well within the old tunnel's keepalive (2 s), once the relay has registered the
    // new tunnel (its HTTP/2 handshake, just after the gateway counts it up); a stream sent to
    // the half-open old tunnel would wait 10 s for an answer instead.
    let mut io = timeout(Duration::from_secs(1), async {
        loop {
            match connector.connect().await {
                Ok(io) => return io,
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    })
    .await
    .expect("the new tunnel is used at once");
    round_trip(&mut io, "new instance").await;
    assert!(timeout(PATIENCE, new_peers.recv()).await.unwrap().is_some());
    assert!(old_peers.try_recv().is_err());
}

#[tokio::test]
async fn one_of_two_relays_killed_leaves_the_other_relays_sessions_alone() {
    let kms = Kms::new();
    let (r1, r2) = (kms.relay("r1").await, kms.relay("r2").await);
    let gateway = kms.gateway("gw-a", &[&r1.addr, &r2.addr]);
    let links = gateway.links();
    let _echo = echo(gateway);
    connected(&links, 2).await;
    let granted = kms.grant("gw-a", HOUR).await;
    let mut on_r1 = connect_soon(&kms.connector(&granted, "gw-a", &[&r1.addr])).await;
    let mut on_r2 = connect_soon(&kms.connector(&granted, "gw-a", &[&r2.addr])).await;
    round_trip(&mut on_r1, "r1").await;

    r1.kill();
    // The CLI on r1 learns (its stream ends); the one on r2 goes on.
    let mut buf = [0u8; 4];
    let cut = timeout(PATIENCE, on_r1.read(&mut buf)).await.unwrap();
    assert!(matches!(cut, Ok(0) | Err(_)), "{cut:?}");
    round_trip(&mut on_r2, "still here").await;
    connected(&links, 1).await;
    // A new session, with both relays named, gets through r2.
    let both = kms.connector(&granted, "gw-a", &[&r1.addr, &r2.addr]);
    let mut fresh = both.connect().await.expect("r2 takes new sessions");
    round_trip(&mut fresh, "new").await;
    round_trip(&mut on_r2, "still here").await;
}

#[tokio::test]
async fn a_draining_relay_sends_gateways_elsewhere_and_drops_no_other_session() {
    let kms = Kms::new();
    let (r1, r2) = (kms.relay("r1").await, kms.relay("r2").await);
    let gateway = kms.gateway("gw-a", &[&r1.addr, &r2.addr]);
    let links = gateway.links();
    let _echo = echo(gateway);
    connected(&links, 2).await;
    let granted = kms.grant("gw-a", HOUR).await;
    let mut on_r1 = connect_soon(&kms.connector(&granted, "gw-a", &[&r1.addr])).await;
    let mut on_r2 = connect_soon(&kms.connector(&granted, "gw-a", &[&r2.addr])).await;

    r1.stop.cancel();
    // The gateway hears the drain and re-tunnels; r1 is gone, so one tunnel is left.
    connected(&links, 1).await;
    // Streams relayed by the draining relay finish within its grace...
    round_trip(&mut on_r1, "draining").await;
    // ...and the other relay's are untouched.
    round_trip(&mut on_r2, "other relay").await;
    drop(on_r1);
    let stopped = timeout(PATIENCE, r1.task)
        .await
        .expect("drained relay stops");
    assert!(stopped.unwrap().is_ok());
    round_trip(&mut on_r2, "still").await;
}

/// `/metrics` of a relay, as text.
async fn scrape(addr: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut text = String::new();
    tcp.read_to_string(&mut text).await.unwrap();
    text
}

#[tokio::test]
async fn a_stream_the_gateway_ends_is_closed_at_the_relay_whatever_the_cli_does() {
    let kms = Kms::new();
    let metrics = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics_addr = metrics.local_addr().unwrap().to_string();
    let mut config = RelayConfig::new("edge", kms.relay_tls("edge"));
    config.metrics_listener = Some(metrics);
    let relay = kms.relay_with(config).await;
    let mut gateway = kms.gateway("gw-a", &[&relay.addr]);
    connected(&gateway.links(), 1).await;
    let granted = kms.grant("gw-a", HOUR).await;
    let connector = kms.connector(&granted, "gw-a", &[&relay.addr]);
    let (cli, accepted) = tokio::join!(connect_soon(&connector), gateway.accept());
    let (mut cli, tunnel) = (cli, accepted.unwrap());
    assert!(scrape(&metrics_addr)
        .await
        .contains("kms_pam_relay_open_streams 1"));
    // The gateway ends the session's tunnel (as on a termination); the CLI keeps its end open.
    drop(tunnel);
    let mut buf = [0u8; 8];
    let read = timeout(PATIENCE, cli.read(&mut buf)).await.unwrap();
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    timeout(PATIENCE, async {
        while !scrape(&metrics_addr)
            .await
            .contains("kms_pam_relay_open_streams 0")
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the relay still holds the stream");
    let text = scrape(&metrics_addr).await;
    assert!(text.contains("kms_pam_relay_streams_total 1"), "{text}");
    assert!(text.contains("kms_pam_relay_tunnels 1"), "{text}");
}

#[tokio::test]
async fn a_renewed_certificate_re_tunnels_make_before_break() {
    let kms = Kms::new();
    let relay = kms.relay("edge").await;
    let gateway = kms.gateway("gw-a", &[&relay.addr]);
    let (links, identity) = (gateway.links(), gateway.identity());
    let _echo = echo(gateway);
    connected(&links, 1).await;
    let granted = kms.grant("gw-a", HOUR).await;
    let connector = kms.connector(&granted, "gw-a", &[&relay.addr]);
    let mut before = connect_soon(&connector).await;
    round_trip(&mut before, "before").await;

    let (cert, key) = kms.gateway_identity("gw-a");
    identity.replace(kms.ca.cert_pem(), &cert, &key).unwrap();
    // The stream opened before goes on; new ones open on the new tunnel.
    round_trip(&mut before, "still on the old tunnel").await;
    let mut after = connect_soon(&connector).await;
    round_trip(&mut after, "on the new one").await;
    round_trip(&mut before, "and the old one still").await;
    assert!(identity
        .replace(kms.ca.cert_pem(), "not a certificate", &key)
        .is_err());
    round_trip(&mut after, "a bad renewal changes nothing").await;
}

/// A relay that only records the certificate each gateway connection presents.
#[tokio::test]
async fn the_renewed_certificate_is_the_one_relays_see_and_the_old_tunnel_closes() {
    use crate::tls::tunnel_server_config;
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let kms = Kms::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let tls = kms.relay_tls("recorder");
    let server =
        tunnel_server_config(&tls.ca_pem, &tls.cert_pem, &tls.key, &[GATEWAY_ALPN]).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(server);
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let Ok(tls) = acceptor.accept(tcp).await else {
                continue;
            };
            let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
            let handshake = hyper::client::conn::http2::handshake::<
                _,
                _,
                http_body_util::Empty<bytes::Bytes>,
            >(TokioExecutor::new(), TokioIo::new(tls));
            let (sender, conn) = handshake.await.unwrap();
            let (closed_tx, closed) = tokio::sync::oneshot::channel::<()>();
            tokio::spawn(async move {
                let _ = conn.await;
                drop(sender);
                let _ = closed_tx.send(());
            });
            let _ = seen_tx.send((fingerprint(&leaf), closed));
        }
    });
    let (cert, key) = kms.gateway_identity("gw-a");
    let sessions: Arc<dyn SessionManager> = kms.sessions.clone();
    let mut options = DialOptions::new(vec![addr]);
    options.use_env_proxy = false;
    let gateway = dial_relays("gw-a", kms.ca.cert_pem(), &cert, &key, sessions, options).unwrap();
    let (first, first_closed) = timeout(PATIENCE, seen.recv()).await.unwrap().unwrap();
    let old = crate::tls::parse_certs(&cert).unwrap().remove(0);
    assert_eq!(first, fingerprint(&old));

    let (renewed, new_key) = kms.gateway_identity("gw-a");
    gateway
        .identity()
        .replace(kms.ca.cert_pem(), &renewed, &new_key)
        .unwrap();
    let (second, _) = timeout(PATIENCE, seen.recv()).await.unwrap().unwrap();
    let new = crate::tls::parse_certs(&renewed).unwrap().remove(0);
    assert_eq!(
        second,
        fingerprint(&new),
        "the new tunnel presents the renewed certificate"
    );
    timeout(PATIENCE, first_closed)
        .await
        .expect("the old tunnel, idle, was closed")
        .unwrap();
}
