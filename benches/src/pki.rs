//! The certificates of a benchmarked path, made with the library's own CA code, the way KMS and
//! the CLI make them: an API server certificate, the KMS CA, a gateway certificate, and a
//! session certificate signed from the client's CSR.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use kms_pam::session::{Session, SessionId, SessionStatus};
use kms_pam::tls::{
    crypto_provider, generate_csr, CertificateAuthority, SessionCertSpec, SessionKey,
};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Lifetime of everything made here: longer than any benchmark.
const VALIDITY: Duration = Duration::from_secs(6 * 3600);

/// Names every server of a benchmark answers to.
const LOOPBACK: [&str; 2] = ["127.0.0.1", "localhost"];

/// A server certificate, its key and the CA that signed it, all PEM.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ServerMaterial {
    /// The CA clients trust.
    pub ca_pem: String,
    /// The server's certificate.
    pub cert_pem: String,
    /// The server's private key.
    pub key_pem: String,
}

impl ServerMaterial {
    /// A fresh CA and a certificate for the loopback names.
    pub fn generate(ca_name: &str) -> anyhow::Result<Self> {
        let ca = CertificateAuthority::generate(ca_name, VALIDITY)?;
        let names = LOOPBACK.map(str::to_owned);
        let issued = ca.issue_server_cert(&names, VALIDITY)?;
        Ok(Self {
            ca_pem: ca.cert_pem().to_owned(),
            cert_pem: issued.cert_pem,
            key_pem: issued.key.expose_secret().to_owned(),
        })
    }
}

/// The KMS side of one session: CA, gateway certificate, and the session with its client
/// certificate and key.
#[derive(Debug)]
pub struct TunnelMaterial {
    /// The KMS CA and the gateway's certificate.
    pub gateway: ServerMaterial,
    /// The session, active for an hour and bound to the gateway.
    pub session: Session,
    /// The session certificate, signed from a CSR as KMS does.
    pub session_cert_pem: String,
    /// The session key, generated on the client side.
    pub session_key_pem: String,
    /// A relay's certificate from the same KMS CA.
    pub relay: ServerMaterial,
}

impl TunnelMaterial {
    /// A KMS CA, a certificate for gateway `gateway_name` on loopback, a relay's, and one
    /// session.
    pub fn generate(gateway_name: &str) -> anyhow::Result<Self> {
        let (gateway, relay, mut sessions) = generate_with_relay(gateway_name, 1)?;
        let one = sessions.pop().context("no session")?;
        Ok(Self {
            gateway,
            relay,
            session: one.session,
            session_cert_pem: one.cert_pem,
            session_key_pem: one.key_pem,
        })
    }
}

/// One session of many bound to one gateway: its own key and certificate.
#[derive(Clone, Debug)]
pub struct SessionMaterial {
    /// The session, active for an hour.
    pub session: Session,
    /// Its certificate, signed from a CSR as KMS does.
    pub cert_pem: String,
    /// Its key, generated on the client side.
    pub key_pem: String,
}

/// A KMS CA, a certificate for gateway `gateway_name` on loopback, and `n` sessions bound to
/// it, each with its own key and certificate (as `n` users' `pam access` would have).
pub fn generate_sessions(
    gateway_name: &str,
    n: usize,
) -> anyhow::Result<(ServerMaterial, Vec<SessionMaterial>)> {
    let (gateway, _relay, sessions) = generate_with_relay(gateway_name, n)?;
    Ok((gateway, sessions))
}

/// [`generate_sessions`], with a relay certificate from the same KMS CA (for the relayed path).
pub fn generate_with_relay(
    gateway_name: &str,
    n: usize,
) -> anyhow::Result<(ServerMaterial, ServerMaterial, Vec<SessionMaterial>)> {
    let ca = CertificateAuthority::generate("kms-pam bench KMS CA", VALIDITY)?;
    let names = LOOPBACK.map(str::to_owned);
    // As enrollment makes it: the gateway's identity, usable to dial a relay too.
    let (gateway_key, csr) = generate_csr(gateway_name)?;
    let gateway_cert = ca.sign_gateway_csr(&csr, gateway_name, &names, VALIDITY)?;
    let (relay_key, csr) = generate_csr("bench-relay")?;
    let relay = ServerMaterial {
        ca_pem: ca.cert_pem().to_owned(),
        cert_pem: ca.sign_relay_csr(&csr, "bench-relay", &names, VALIDITY)?,
        key_pem: relay_key.expose_secret().to_owned(),
    };
    let now = SystemTime::now();
    let mut sessions = Vec::with_capacity(n);
    for i in 0..n {
        let session = Session {
            id: SessionId::new_random(),
            user: format!("bench{i}"),
            resource: "bench".into(),
            account: "admin".into(),
            gateway: gateway_name.into(),
            status: SessionStatus::Active,
            created_at: now,
            expires_at: now + Duration::from_secs(3600),
            ended_at: None,
            reason: Some("benchmark".into()),
            binding: None,
        };
        let (key, csr) = SessionKey::generate()?;
        let spec = SessionCertSpec::new(
            session.id.to_string(),
            session.gateway.clone(),
            session.user.clone(),
            session.created_at,
            session.expires_at,
        );
        sessions.push(SessionMaterial {
            cert_pem: ca.sign_session_csr(&csr, &spec)?,
            key_pem: key.key_pem().expose_secret().to_owned(),
            session,
        });
    }
    let gateway = ServerMaterial {
        ca_pem: ca.cert_pem().to_owned(),
        cert_pem: gateway_cert,
        key_pem: gateway_key.expose_secret().to_owned(),
    };
    Ok((gateway, relay, sessions))
}

/// A rustls server configuration for `cert_pem` and `key_pem`, offering `alpn`.
pub fn server_config(
    cert_pem: &str,
    key_pem: &str,
    alpn: &[&[u8]],
) -> anyhow::Result<Arc<ServerConfig>> {
    let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .context("server certificate PEM")?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).context("server key PEM")?;
    let mut config = ServerConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// A rustls client configuration trusting `ca_pem`, offering `alpn`.
pub fn client_config(ca_pem: &str, alpn: &[&[u8]]) -> anyhow::Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.context("CA certificate PEM")?)?;
    }
    let mut config = ClientConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn material_builds_usable_configs() {
        let upstream = ServerMaterial::generate("test CA").unwrap();
        server_config(&upstream.cert_pem, &upstream.key_pem, &[b"h2"]).unwrap();
        client_config(&upstream.ca_pem, &[b"http/1.1"]).unwrap();
        let tunnel = TunnelMaterial::generate("gw").unwrap();
        assert_eq!(tunnel.session.gateway, "gw");
        assert!(tunnel.session_cert_pem.contains("BEGIN CERTIFICATE"));
    }
}
