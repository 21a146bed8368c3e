//! What each `bench-node` role runs. A role reads its spec (one JSON line on stdin), starts,
//! announces itself with one [`Ready`] JSON line on stdout, and serves until stdin closes.
//!
//! The gateway and the local proxy are the library's own `serve` entry points, wired as the
//! gateway binary and `kms-pam pam access` wire them; only the KMS is replaced by in-memory
//! stores holding the sessions of the benchmark.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use kms_pam::audit::{AuditSink, JsonLinesSink, NullAuditSink};
use kms_pam::credential::{MemoryCredentialStore, Upstream};
use kms_pam::gateway::{self, GatewayConfig};
use kms_pam::local::{self, LocalProxyConfig};
use kms_pam::metrics::GatewayMetrics;
use kms_pam::proxy::Pipeline;
use kms_pam::relay::{dial_relays, DialOptions, RelayConfig, RelayConnector, RelayTls};
use kms_pam::session::{MemorySessionManager, Session};
use kms_pam::tls::{
    tunnel_server_config, LocalServingCert, PrivateKeyPem, UpstreamTls, TUNNEL_ALPN,
};
use kms_pam::transport::tls::{TlsConnector, TlsTunnelAcceptor};
use kms_pam::transport::{GatewayTransport, TunnelAcceptor};
use kms_pam::Secret;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

use crate::fixtures;
use crate::pki::{self, ServerMaterial};
use crate::upstream::{self, UpstreamConfig};

/// The roles `bench-node` can play (its first argument).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The stand-in API server.
    Upstream,
    /// The gateway.
    Gateway,
    /// The CLI's loopback proxy.
    LocalProxy,
    /// A relay (`kms-pam relay serve`).
    Relay,
}

impl Role {
    /// The argument naming the role.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Upstream => "upstream",
            Self::Gateway => "gateway",
            Self::LocalProxy => "local-proxy",
            Self::Relay => "relay",
        }
    }

    /// The role an argument names.
    pub fn parse(arg: &str) -> Option<Self> {
        [Self::Upstream, Self::Gateway, Self::LocalProxy, Self::Relay]
            .into_iter()
            .find(|role| role.as_str() == arg)
    }
}

/// What a started node tells its parent.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Ready {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The CA its clients must trust, when the node made it itself (the local proxy).
    pub ca_pem: Option<String>,
    /// Body sizes served (the upstream): small list, large list.
    pub body_sizes: Option<(usize, usize)>,
}

/// The stand-in API server's spec.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UpstreamSpec {
    /// Its certificate.
    pub tls: ServerMaterial,
    /// The service-account token it accepts.
    pub token: String,
    /// Size of the large list.
    pub large_list_bytes: usize,
}

/// Where the gateway's audit events go.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum AuditSpec {
    /// Nowhere ([`NullAuditSink`]).
    Null,
    /// Appended to a file ([`JsonLinesSink`]), as the gateway binary does.
    JsonLines(PathBuf),
}

/// The gateway's spec.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GatewaySpec {
    /// Its name (sessions are bound to it).
    pub name: String,
    /// The KMS CA and the gateway's certificate.
    pub tls: ServerMaterial,
    /// The sessions it admits (all on one resource and account).
    pub sessions: Vec<Session>,
    /// The API server's URL.
    pub upstream_url: String,
    /// The API server's CA.
    pub upstream_ca_pem: String,
    /// The account's service-account token.
    pub token: String,
    /// The audit sink.
    pub audit: AuditSpec,
    /// Relays to dial out to as well (`host:port`); none: direct only.
    #[serde(default)]
    pub relays: Vec<String>,
}

/// A relay's spec.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RelaySpec {
    /// The KMS CA and the relay's certificate.
    pub tls: ServerMaterial,
}

/// The local proxy's spec.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LocalProxySpec {
    /// The bearer token of the session kubeconfig.
    pub local_token: String,
    /// The KMS CA.
    pub kms_ca_pem: String,
    /// The session certificate and key.
    pub session_cert_pem: String,
    /// The session key.
    pub session_key_pem: String,
    /// The gateway's `host:port` (through relays: the name its certificate carries).
    pub gateway_addr: String,
    /// Reach the gateway through these relays (`host:port`) instead of dialling it.
    #[serde(default)]
    pub relays: Vec<String>,
    /// The gateway's name (asked of the relays).
    #[serde(default)]
    pub gateway_name: String,
}

/// Runs the stand-in API server.
pub async fn run_upstream<A, F>(spec: UpstreamSpec, announce: A, shutdown: F) -> anyhow::Result<()>
where
    A: FnOnce(&Ready) -> anyhow::Result<()>,
    F: Future<Output = ()>,
{
    let tls = pki::server_config(&spec.tls.cert_pem, &spec.tls.key_pem, &[b"h2", b"http/1.1"])?;
    let config = UpstreamConfig {
        token: spec.token,
        tls,
        pods: fixtures::pod_list(),
        configmaps: fixtures::configmap_list(spec.large_list_bytes),
        event: fixtures::watch_event(),
    };
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    announce(&Ready {
        addr: listener.local_addr()?,
        ca_pem: None,
        body_sizes: Some((config.pods.len(), config.configmaps.len())),
    })?;
    upstream::serve(listener, config, shutdown).await
}

/// Runs a gateway with in-memory session and credential stores.
pub async fn run_gateway<A, F>(spec: GatewaySpec, announce: A, shutdown: F) -> anyhow::Result<()>
where
    A: FnOnce(&Ready) -> anyhow::Result<()>,
    F: Future<Output = ()>,
{
    let key = PrivateKeyPem::new(spec.tls.key_pem.clone());
    let tls = tunnel_server_config(&spec.tls.ca_pem, &spec.tls.cert_pem, &key, &[TUNNEL_ALPN])?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let listening = TlsTunnelAcceptor::new(listener, tls, spec.name.clone());

    let credentials = MemoryCredentialStore::new();
    let upstream = Upstream::new(
        spec.upstream_url.parse().context("upstream URL")?,
        UpstreamTls::CaBundle(spec.upstream_ca_pem),
    );
    let first = spec.sessions.first().context("no session")?;
    let (resource, account) = (first.resource.clone(), first.account.clone());
    credentials.add_resource(resource.clone(), upstream);
    credentials.add_account(resource, account, Secret::new(spec.token));
    let sessions = Arc::new(MemorySessionManager::new());
    for session in spec.sessions {
        sessions.insert(session);
    }
    let mut acceptors: Vec<Box<dyn TunnelAcceptor>> = vec![Box::new(listening)];
    if !spec.relays.is_empty() {
        let mut options = DialOptions::new(spec.relays.clone());
        options.use_env_proxy = false;
        let (tls, manager) = (&spec.tls, sessions.clone());
        let relayed = dial_relays(
            &spec.name,
            &tls.ca_pem,
            &tls.cert_pem,
            &key,
            manager,
            options,
        )?;
        acceptors.push(Box::new(relayed));
    }
    let acceptor = kms_pam::transport::merge(acceptors);
    let audit: Arc<dyn AuditSink> = match &spec.audit {
        AuditSpec::Null => Arc::new(NullAuditSink),
        AuditSpec::JsonLines(path) => Arc::new(JsonLinesSink::open(path).await?),
    };
    // As the gateway binary with `--metrics-listen`: Prometheus counters on the request path.
    let pipeline = Pipeline::builder()
        .observer(Arc::new(GatewayMetrics::new()))
        .build();
    let config = GatewayConfig::new(spec.name, sessions, Arc::new(credentials), audit)
        .with_pipeline(pipeline);
    announce(&Ready {
        addr,
        ca_pem: None,
        body_sizes: None,
    })?;
    gateway::serve(acceptor, config, shutdown).await?;
    Ok(())
}

/// Runs the loopback proxy with a fresh serving certificate, as `kms-pam pam access` does.
pub async fn run_local_proxy<A, F>(
    spec: LocalProxySpec,
    announce: A,
    shutdown: F,
) -> anyhow::Result<()>
where
    A: FnOnce(&Ready) -> anyhow::Result<()>,
    F: Future<Output = ()>,
{
    let key = PrivateKeyPem::new(spec.session_key_pem);
    let connector: Arc<dyn GatewayTransport> = if spec.relays.is_empty() {
        let (ca, cert) = (&spec.kms_ca_pem, &spec.session_cert_pem);
        Arc::new(TlsConnector::from_pem(ca, cert, &key, spec.gateway_addr)?)
    } else {
        Arc::new(RelayConnector::from_pem(
            &spec.kms_ca_pem,
            &spec.session_cert_pem,
            &key,
            &spec.gateway_name,
            &spec.gateway_addr,
            spec.relays,
        )?)
    };
    let cert = LocalServingCert::generate(Duration::from_secs(3600))?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    announce(&Ready {
        addr: listener.local_addr()?,
        ca_pem: Some(cert.ca_pem.clone()),
        body_sizes: None,
    })?;
    let config = LocalProxyConfig::new(
        Secret::new(spec.local_token),
        cert.server_config()?,
        connector,
    );
    local::serve(listener, config, shutdown).await?;
    Ok(())
}

/// Runs a relay.
pub async fn run_relay<A, F>(spec: RelaySpec, announce: A, shutdown: F) -> anyhow::Result<()>
where
    A: FnOnce(&Ready) -> anyhow::Result<()>,
    F: Future<Output = ()>,
{
    let key = PrivateKeyPem::new(spec.tls.key_pem);
    let tls = RelayTls::new(spec.tls.ca_pem, spec.tls.cert_pem, key);
    let mut config = RelayConfig::new("bench-relay", tls);
    config.drain_grace = Duration::ZERO;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    announce(&Ready {
        addr: listener.local_addr()?,
        ca_pem: None,
        body_sizes: None,
    })?;
    kms_pam::relay::serve(listener, config, shutdown).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_through_their_argument() {
        for role in [Role::Upstream, Role::Gateway, Role::LocalProxy, Role::Relay] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("kms"), None);
    }
}
