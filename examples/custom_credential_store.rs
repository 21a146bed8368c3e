//! Run with: `cargo run -p kms-pam-examples --example custom_credential_store`
//!
//! A `CredentialStore` that reads service-account tokens from the embedder's own source — here
//! files in a directory (`<dir>/<resource>/<account>`, as a Vault agent or a CSI secret mount would
//! lay them out) — used by a mutual-TLS gateway in standalone form. A session certificate is issued
//! from a CSR, kubectl runs through the loopback proxy, and the token is read fresh per session.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kms_pam::audit::NullAuditSink;
use kms_pam::credential::{CredentialError, CredentialStore, SessionCredential, Upstream};
use kms_pam::gateway::mtls::{self, GatewayTls, MtlsGateway};
use kms_pam::gateway::GatewayOptions;
use kms_pam::local::{self, LocalProxyConfig};
use kms_pam::session::{MemorySessionManager, NewSession};
use kms_pam::tls::{
    CertificateAuthority, LocalServingCert, SessionCertSpec, SessionKey, UpstreamTls,
};
use kms_pam::transport::tls::TlsConnector;
use kms_pam::Secret;
use kms_pam_tests::apiserver::{ApiServerDouble, DoubleConfig};
use kms_pam_tests::kubectl::Kubectl;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Tokens from `<dir>/<resource>/<account>` files; upstreams from a fixed map.
struct TokenDirectory {
    dir: PathBuf,
    upstream: Upstream,
}

#[async_trait]
impl CredentialStore for TokenDirectory {
    async fn credential(
        &self,
        session: &kms_pam::session::Session,
    ) -> Result<SessionCredential, CredentialError> {
        let path = self.dir.join(&session.resource).join(&session.account);
        let token = tokio::fs::read_to_string(&path)
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => CredentialError::NotFound {
                    resource: session.resource.clone(),
                    account: session.account.clone(),
                },
                _ => CredentialError::unavailable(format!("{}: {e}", path.display())),
            })?;
        Ok(SessionCredential::new(
            self.upstream.clone(),
            Secret::new(token.trim()),
        ))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cluster = ApiServerDouble::start(DoubleConfig::default()).await?;
    let tokens = tempfile::tempdir()?;
    std::fs::create_dir_all(tokens.path().join("prod"))?;
    std::fs::write(tokens.path().join("prod/admin"), cluster.token())?;
    let store = TokenDirectory {
        dir: tokens.path().to_owned(),
        upstream: Upstream::new(
            cluster.url().parse()?,
            UpstreamTls::CaBundle(cluster.ca_pem().to_owned()),
        ),
    };

    // The gateway: a CA, its server certificate, sessions kept in memory.
    let ca = CertificateAuthority::generate("example CA", Duration::from_secs(3600))?;
    let server = ca.issue_server_cert(&["127.0.0.1".to_owned()], Duration::from_secs(3600))?;
    let sessions = Arc::new(MemorySessionManager::new());
    let session = sessions
        .create(
            NewSession::new(
                "alice",
                "prod",
                "admin",
                "gw-example",
                Duration::from_secs(600),
            )
            .with_reason("example"),
        )
        .await?;
    let gateway_listener = TcpListener::bind("127.0.0.1:0").await?;
    let gateway_addr = gateway_listener.local_addr()?;
    let stop = CancellationToken::new();
    let gateway = MtlsGateway::new(
        "gw-example",
        GatewayTls::new(ca.cert_pem(), server.cert_pem, server.key),
        sessions.clone(),
        Arc::new(store),
        GatewayOptions::new(Arc::new(NullAuditSink)),
    );
    let gateway_task = tokio::spawn(mtls::serve(
        gateway_listener,
        gateway,
        stop.clone().cancelled_owned(),
    ));

    // The client side: a key that never leaves it, a certificate for the session, the proxy.
    let (key, csr) = SessionKey::generate()?;
    let cert = ca.sign_session_csr(
        &csr,
        &SessionCertSpec::new(
            session.id.to_string(),
            session.gateway.clone(),
            session.user.clone(),
            session.created_at,
            session.expires_at,
        ),
    )?;
    let transport = TlsConnector::from_pem(
        ca.cert_pem(),
        &cert,
        key.key_pem(),
        gateway_addr.to_string(),
    )?;
    let serving = LocalServingCert::generate(Duration::from_secs(600))?;
    let local_token = Secret::random(32)?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("https://{}", listener.local_addr()?);
    let config = LocalProxyConfig::new(
        local_token.clone(),
        serving.server_config()?,
        Arc::new(transport),
    );
    let proxy_task = tokio::spawn(local::serve(
        listener,
        config,
        stop.clone().cancelled_owned(),
    ));

    let kubectl = Kubectl::new(&url, &serving.ca_pem, local_token.expose())?;
    let out = kubectl.run(&["get", "pods"]).await;
    print!("{}{}", out.stdout_str(), out.stderr);
    stop.cancel();
    gateway_task.await??;
    proxy_task.await??;
    cluster.shutdown().await;
    anyhow::ensure!(out.success(), "kubectl failed");
    Ok(())
}
