//! Real TLS 1.3 handshakes between the tunnel configurations.

use std::time::{Duration, SystemTime};

use rustls::ClientConfig;

use super::*;
use crate::tls::test_support::handshake;
use crate::tls::{CertificateAuthority, SessionCertSpec, SessionIdentity, SessionKey};

const HOUR: Duration = Duration::from_secs(3600);
const GATEWAY_HOST: &str = "gw.test";

/// A KMS CA and a gateway enrolled with it.
struct Kms {
    ca: CertificateAuthority,
    server: Arc<ServerConfig>,
}

impl Kms {
    fn new() -> Self {
        let ca = CertificateAuthority::generate("kms-pam test CA", 24 * HOUR).unwrap();
        let (gateway_key, csr) = super::super::generate_csr("gw").unwrap();
        let names = [GATEWAY_HOST.to_owned()];
        let gateway_cert = ca.sign_gateway_csr(&csr, "gw", &names, HOUR).unwrap();
        let server =
            tunnel_server_config(ca.cert_pem(), &gateway_cert, &gateway_key, &[TUNNEL_ALPN])
                .unwrap();
        Self { ca, server }
    }

    /// A client holding a session certificate from `issuer` valid over `[from, until]`.
    fn client(
        &self,
        issuer: &CertificateAuthority,
        from: SystemTime,
        until: SystemTime,
    ) -> Arc<ClientConfig> {
        let (key, csr) = SessionKey::generate().unwrap();
        let spec = SessionCertSpec {
            session_id: "s-1".to_owned(),
            gateway: "gw".to_owned(),
            user: "alice".to_owned(),
            not_before: from,
            not_after: until,
        };
        let cert = issuer.sign_session_csr(&csr, &spec).unwrap();
        tunnel_client_config(self.ca.cert_pem(), &cert, key.key_pem(), &[TUNNEL_ALPN]).unwrap()
    }

    fn valid_client(&self) -> Arc<ClientConfig> {
        let now = SystemTime::now();
        self.client(&self.ca, now - Duration::from_secs(60), now + HOUR)
    }
}

#[tokio::test]
async fn session_certificate_opens_the_tunnel_and_names_the_session() {
    let kms = Kms::new();
    let (client, server) = handshake(&kms.valid_client(), &kms.server, GATEWAY_HOST).await;
    let client = client.unwrap();
    let server = server.unwrap();

    let connection = server.get_ref().1;
    assert_eq!(
        connection.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    assert_eq!(connection.alpn_protocol(), Some(TUNNEL_ALPN));
    assert_eq!(client.get_ref().1.alpn_protocol(), Some(TUNNEL_ALPN));
    let peer = connection.peer_certificates().unwrap();
    let identity = SessionIdentity::from_cert_der(&peer[0]).unwrap();
    assert_eq!(
        (identity.session_id.as_str(), identity.gateway.as_str()),
        ("s-1", "gw")
    );
    assert_eq!(identity.user, "alice");
}

#[tokio::test]
async fn client_without_certificate_is_refused() {
    let kms = Kms::new();
    let mut config = ClientConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(root_store(kms.ca.cert_pem()).unwrap())
        .with_no_client_auth();
    config.alpn_protocols = alpn_list(&[TUNNEL_ALPN]);
    let (_, server) = handshake(&Arc::new(config), &kms.server, GATEWAY_HOST).await;
    assert!(server.is_err());
}

#[tokio::test]
async fn certificate_from_another_ca_is_refused() {
    let kms = Kms::new();
    let rogue = CertificateAuthority::generate("kms-pam test CA", 24 * HOUR).unwrap();
    let now = SystemTime::now();
    let client = kms.client(&rogue, now - Duration::from_secs(60), now + HOUR);
    let (_, server) = handshake(&client, &kms.server, GATEWAY_HOST).await;
    assert!(server.is_err());
}

#[tokio::test]
async fn expired_certificate_is_refused() {
    let kms = Kms::new();
    let now = SystemTime::now();
    let client = kms.client(&kms.ca, now - 2 * HOUR, now - Duration::from_secs(1));
    let (_, server) = handshake(&client, &kms.server, GATEWAY_HOST).await;
    let err = server.unwrap_err();
    assert!(err.to_string().contains("expired"), "{err}");
}

#[tokio::test]
async fn not_yet_valid_certificate_is_refused() {
    let kms = Kms::new();
    let now = SystemTime::now();
    let client = kms.client(&kms.ca, now + HOUR, now + 2 * HOUR);
    let (_, server) = handshake(&client, &kms.server, GATEWAY_HOST).await;
    let err = server.unwrap_err();
    assert!(err.to_string().contains("not valid yet"), "{err}");
}

#[tokio::test]
async fn gateway_certificate_cannot_open_a_tunnel_as_client() {
    let kms = Kms::new();
    let (key, csr) = super::super::generate_csr("gw2").unwrap();
    let names = ["gw2.test".to_owned()];
    let cert = kms.ca.sign_gateway_csr(&csr, "gw2", &names, HOUR).unwrap();
    let client = tunnel_client_config(kms.ca.cert_pem(), &cert, &key, &[TUNNEL_ALPN]).unwrap();
    let (_, server) = handshake(&client, &kms.server, GATEWAY_HOST).await;
    // TLS accepts it (gateways dial relays with this certificate as a client), but it names no
    // session: the identity read that follows every handshake refuses it.
    let server = server.expect("the chain and client usage are valid");
    let peer = server.get_ref().1.peer_certificates().unwrap();
    let err = crate::tls::SessionIdentity::from_cert_der(&peer[0]).unwrap_err();
    assert!(err.to_string().contains("session URI"), "{err}");
}

#[tokio::test]
async fn client_refuses_a_gateway_outside_the_kms_ca_or_its_name() {
    let kms = Kms::new();
    let (wrong_name, _) = handshake(&kms.valid_client(), &kms.server, "other.test").await;
    assert!(wrong_name.is_err());

    let other = Kms::new();
    let (foreign, _) = handshake(&kms.valid_client(), &other.server, GATEWAY_HOST).await;
    assert!(foreign.is_err());
}

#[tokio::test]
async fn unknown_tunnel_protocol_version_fails_the_handshake() {
    let kms = Kms::new();
    let mut config = Arc::unwrap_or_clone(kms.valid_client());
    config.alpn_protocols = vec![b"kms-pam/2".to_vec()];
    let (client, server) = handshake(&Arc::new(config), &kms.server, GATEWAY_HOST).await;
    assert!(client.is_err() && server.is_err());
}

#[test]
fn tunnel_server_keeps_no_resumable_sessions() {
    let kms = Kms::new();
    assert_eq!(kms.server.send_tls13_tickets, 0);
    assert!(!kms.server.session_storage.can_cache());
}

#[test]
fn bad_material_is_reported_by_kind() {
    let ca = CertificateAuthority::generate("kms-pam test CA", HOUR).unwrap();
    let leaf = ca
        .issue_server_cert(&[GATEWAY_HOST.to_owned()], HOUR)
        .unwrap();
    let other = ca
        .issue_server_cert(&[GATEWAY_HOST.to_owned()], HOUR)
        .unwrap();

    let err = tunnel_server_config("garbage", &leaf.cert_pem, &leaf.key, &[]).unwrap_err();
    assert!(matches!(err, TlsError::InvalidCertificate(_)), "{err}");
    let err = tunnel_server_config(ca.cert_pem(), &leaf.cert_pem, &other.key, &[]).unwrap_err();
    assert!(matches!(err, TlsError::Rustls(_)), "{err}");
    let garbage_key = PrivateKeyPem::new("garbage".to_owned());
    let err = tunnel_client_config(ca.cert_pem(), &leaf.cert_pem, &garbage_key, &[]).unwrap_err();
    assert!(matches!(err, TlsError::InvalidKey(_)), "{err}");
}
