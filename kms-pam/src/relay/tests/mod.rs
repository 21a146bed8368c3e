//! A relay, gateways that only dial out, and CLIs reaching them, all on 127.0.0.1 with
//! certificates from a test KMS CA. Keepalives and backoffs are short so the failure cases
//! settle quickly; every wait is bounded so a regression fails instead of hanging.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::session::{MemorySessionManager, NewSession, Session, SessionManager};
use crate::tls::{generate_csr, CertificateAuthority, SessionCertSpec, SessionKey};
use crate::transport::{GatewayTransport, TransportError, TunnelAcceptor, TunnelPeer};

mod failures;
mod flow;
mod liveness;

const HOUR: Duration = Duration::from_secs(3600);
/// For what must happen: generous, since two cores build in parallel.
const PATIENCE: Duration = Duration::from_secs(20);
/// For what must not happen.
const QUIET: Duration = Duration::from_millis(800);
/// Short enough for the black-hole cases to settle in seconds, long enough that a loaded
/// machine does not miss a ping by accident.
const FAST: Keepalive = Keepalive {
    interval: Duration::from_secs(1),
    timeout: Duration::from_secs(1),
};

/// A test KMS: its CA and the sessions it knows.
struct Kms {
    ca: CertificateAuthority,
    sessions: Arc<MemorySessionManager>,
}

/// A running relay.
struct RunningRelay {
    addr: String,
    stop: CancellationToken,
    task: JoinHandle<Result<(), RelayError>>,
}

impl RunningRelay {
    /// Stops it as SIGKILL would: no drain, connections cut.
    fn kill(&self) {
        self.task.abort();
    }
}

/// A session the KMS granted: its certificate and key.
struct Granted {
    session: Session,
    cert: String,
    key: SessionKey,
}

impl Kms {
    fn new() -> Self {
        Self {
            ca: CertificateAuthority::generate("kms-pam test CA", 24 * HOUR).unwrap(),
            sessions: Arc::new(MemorySessionManager::new()),
        }
    }

    fn relay_tls(&self, name: &str) -> RelayTls {
        let (key, csr) = generate_csr(name).unwrap();
        let names = ["127.0.0.1".to_owned()];
        let cert = self.ca.sign_relay_csr(&csr, name, &names, HOUR).unwrap();
        RelayTls::new(self.ca.cert_pem(), cert, key)
    }

    async fn relay(&self, name: &str) -> RunningRelay {
        self.relay_with(RelayConfig::new(name, self.relay_tls(name)))
            .await
    }

    async fn relay_with(&self, mut config: RelayConfig) -> RunningRelay {
        config.keepalive = FAST;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = CancellationToken::new();
        let task = tokio::spawn(serve(listener, config, stop.clone().cancelled_owned()));
        RunningRelay { addr, stop, task }
    }

    /// An identity certificate (and its new key) for gateway `name`, naming `<name>.test`.
    fn gateway_identity(&self, name: &str) -> (String, crate::tls::PrivateKeyPem) {
        let (key, csr) = generate_csr(name).unwrap();
        let names = [format!("{name}.test")];
        (
            self.ca.sign_gateway_csr(&csr, name, &names, HOUR).unwrap(),
            key,
        )
    }

    /// A gateway named `name` dialling `relays`; its certificate names `<name>.test`.
    fn gateway(&self, name: &str, relays: &[&str]) -> RelayTunnels {
        let (cert, key) = self.gateway_identity(name);
        let sessions: Arc<dyn SessionManager> = self.sessions.clone();
        let mut options = DialOptions::new(relays.iter().map(|r| (*r).to_owned()).collect());
        options.keepalive = FAST;
        options.backoff_cap = Duration::from_millis(300);
        options.use_env_proxy = false;
        dial_relays(name, self.ca.cert_pem(), &cert, &key, sessions, options).unwrap()
    }

    /// An active session of alice on `gateway`, for `ttl`.
    async fn grant(&self, gateway: &str, ttl: Duration) -> Granted {
        let new = NewSession::new("alice", "prod", "admin", gateway, ttl);
        let session = self.sessions.create(new).await.unwrap();
        let (key, csr) = SessionKey::generate().unwrap();
        let spec = SessionCertSpec::new(
            session.id.as_str(),
            gateway,
            "alice",
            session.created_at,
            session.expires_at,
        );
        let cert = self.ca.sign_session_csr(&csr, &spec).unwrap();
        Granted { session, cert, key }
    }

    /// A CLI's connector for `granted`, asking for `gateway` through `relays`.
    fn connector(&self, granted: &Granted, gateway: &str, relays: &[&str]) -> RelayConnector {
        let relays = relays.iter().map(|r| (*r).to_owned()).collect();
        let address = format!("{gateway}.test:443");
        let key = granted.key.key_pem();
        RelayConnector::from_pem(
            self.ca.cert_pem(),
            &granted.cert,
            key,
            gateway,
            &address,
            relays,
        )
        .unwrap()
    }
}

/// Echoes every tunnel `tunnels` accepts and reports its peer.
fn echo(mut tunnels: RelayTunnels) -> (mpsc::UnboundedReceiver<TunnelPeer>, JoinHandle<()>) {
    let (peers, seen) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        while let Ok(tunnel) = tunnels.accept().await {
            let _ = peers.send(tunnel.peer);
            tokio::spawn(async move {
                let (mut read, mut write) = tokio::io::split(tunnel.io);
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    (seen, task)
}

/// Waits until `links` holds `n` live relay tunnels.
async fn connected(links: &RelayLinks, n: usize) {
    timeout(PATIENCE, async {
        while links.connected() != n {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{} relay tunnels, not {n}", links.connected()));
}

/// Sends `text` through `io` and reads it back.
async fn round_trip(io: &mut crate::transport::BoxedIo, text: &str) {
    io.write_all(text.as_bytes()).await.unwrap();
    let mut back = vec![0u8; text.len()];
    timeout(PATIENCE, io.read_exact(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, text.as_bytes());
}

/// Connects, retrying while the relay does not hold the gateway yet.
async fn connect_soon(connector: &RelayConnector) -> crate::transport::BoxedIo {
    timeout(PATIENCE, async {
        loop {
            match connector.connect().await {
                Ok(io) => return io,
                Err(TransportError::Unreachable(_)) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("refused: {e}"),
            }
        }
    })
    .await
    .expect("no tunnel through the relay")
}

/// A TCP proxy in front of `target` that records every byte and can stop forwarding without
/// closing (a black hole: no RST, no FIN).
#[derive(Clone)]
struct Tap {
    addr: String,
    bytes: Arc<Mutex<Vec<u8>>>,
    paused: Arc<AtomicBool>,
}

impl Tap {
    async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tap = Self {
            addr: listener.local_addr().unwrap().to_string(),
            bytes: Arc::default(),
            paused: Arc::default(),
        };
        let shared = tap.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&target).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(shared.clone().pump(cr, sw));
                tokio::spawn(shared.clone().pump(sr, cw));
            }
        });
        tap
    }

    async fn pump(
        self,
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
    ) {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            while self.paused.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            self.bytes.lock().unwrap().extend_from_slice(&buf[..n]);
            if to.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    }

    fn saw(&self, needle: &[u8]) -> bool {
        let bytes = self.bytes.lock().unwrap();
        bytes.windows(needle.len()).any(|w| w == needle)
    }

    fn len(&self) -> usize {
        self.bytes.lock().unwrap().len()
    }
}

#[tokio::test]
async fn a_cli_reaches_a_gateway_that_only_dials_out_and_the_relay_sees_ciphertext() {
    let kms = Kms::new();
    let relay = kms.relay("edge-1").await;
    let upstream = Tap::start(relay.addr.clone()).await;
    let gateway = kms.gateway("gw-a", &[&upstream.addr]);
    let links = gateway.links();
    let (mut peers, _echo) = echo(gateway);
    connected(&links, 1).await;
    assert!(links.reach(false).relays[0].connected);
    assert!(!links.reach(false).direct);

    let granted = kms.grant("gw-a", HOUR).await;
    let downstream = Tap::start(relay.addr.clone()).await;
    let connector = kms.connector(&granted, "gw-a", &[&downstream.addr]);
    let mut io = connect_soon(&connector).await;
    let secret = "kubectl-plaintext-and-a-service-account-token";
    round_trip(&mut io, secret).await;
    let peer = timeout(PATIENCE, peers.recv()).await.unwrap().unwrap();
    assert_eq!(peer.session_id, granted.session.id);
    assert!(
        peer.remote_addr.is_some(),
        "the CLI's address as the relay saw it"
    );
    assert!(downstream.len() > secret.len() && upstream.len() > secret.len());
    assert!(
        !downstream.saw(secret.as_bytes()),
        "CLI → relay carries ciphertext only"
    );
    assert!(
        !upstream.saw(secret.as_bytes()),
        "relay → gateway carries ciphertext only"
    );
}

#[tokio::test]
async fn the_cli_tries_the_next_relay_and_remembers_the_one_that_worked() {
    let kms = Kms::new();
    let (r1, r2) = (kms.relay("r1").await, kms.relay("r2").await);
    let gateway = kms.gateway("gw-a", &[&r2.addr]);
    let links = gateway.links();
    let _echo = echo(gateway);
    connected(&links, 1).await;
    let granted = kms.grant("gw-a", HOUR).await;
    // r1 does not hold the gateway: offline there, so r2.
    let connector = kms.connector(&granted, "gw-a", &[&r1.addr, &r2.addr]);
    let mut io = connect_soon(&connector).await;
    round_trip(&mut io, "via r2").await;
    assert_eq!(connector.preferred.load(Ordering::Relaxed), 1);
}

/// More sessions than HTTP/2's usual stream limit (hyper's 200) through one gateway tunnel,
/// each holding its stream open, as relayed sessions do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tunnel_carries_more_sessions_than_the_usual_stream_limit() {
    const SESSIONS: usize = 240;
    let kms = Kms::new();
    let relay = kms.relay("edge").await;
    let gateway = kms.gateway("gw-a", &[&relay.addr]);
    let links = gateway.links();
    let _echo = echo(gateway);
    connected(&links, 1).await;
    let mut open = Vec::with_capacity(SESSIONS);
    // The gateway counts its tunnel up after TLS; the relay routes to it after HTTP/2's
    // handshake: the first session waits for that, the others must not wait for anything.
    let first = kms.grant("gw-a", HOUR).await;
    open.push(connect_soon(&kms.connector(&first, "gw-a", &[&relay.addr])).await);
    for i in 1..SESSIONS {
        let granted = kms.grant("gw-a", HOUR).await;
        let connector = kms.connector(&granted, "gw-a", &[&relay.addr]);
        let io = timeout(PATIENCE, connector.connect())
            .await
            .unwrap_or_else(|_| panic!("session {i} waited for a stream slot"))
            .unwrap_or_else(|e| panic!("session {i}: {e}"));
        open.push(io);
    }
    for (i, io) in open.iter_mut().enumerate().step_by(60) {
        round_trip(io, &format!("session {i}")).await;
    }
    round_trip(open.last_mut().unwrap(), "the last one").await;
}
