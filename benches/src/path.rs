//! Starting the processes of a benchmarked path: the stand-in API server, and the kms-pam path
//! in front of it (local proxy → mTLS tunnel → gateway).

use std::path::{Path, PathBuf};

use kms_pam::Secret;

use crate::load::Endpoint;
use crate::node::{AuditSpec, GatewaySpec, LocalProxySpec, RelaySpec, Role, UpstreamSpec};
use crate::pki::{self, ServerMaterial, TunnelMaterial};
use crate::spawn::NodeProcess;

/// The gateway's name in every benchmark.
pub const GATEWAY_NAME: &str = "bench-gw";

/// ALPN of the HTTP/1.1 load generator.
pub const HTTP1: &[&[u8]] = &[b"http/1.1"];
/// ALPN of the HTTP/2 watch client.
pub const HTTP2: &[&[u8]] = &[b"h2"];

/// The stand-in API server, running.
#[derive(Debug)]
pub struct UpstreamNode {
    /// Its process.
    pub process: NodeProcess,
    /// Its certificate and CA.
    pub tls: ServerMaterial,
    /// The service-account token it accepts.
    pub token: String,
}

impl UpstreamNode {
    /// Starts it (`exe` is `bench-node`) with a large list of `large_list_bytes`.
    pub async fn start(exe: &Path, large_list_bytes: usize) -> anyhow::Result<Self> {
        let tls = ServerMaterial::generate("bench API server CA")?;
        let token = Secret::random(32)?.expose().to_owned();
        let spec = UpstreamSpec {
            tls: tls.clone(),
            token: token.clone(),
            large_list_bytes,
        };
        let process = NodeProcess::start(exe, Role::Upstream, &spec).await?;
        Ok(Self {
            process,
            tls,
            token,
        })
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.process.ready.addr)
    }

    /// Direct access with the service-account token, over `alpn`.
    pub fn endpoint(&self, alpn: &[&[u8]]) -> anyhow::Result<Endpoint> {
        Ok(Endpoint {
            addr: self.process.ready.addr,
            tls: Some(pki::client_config(&self.tls.ca_pem, alpn)?),
            bearer: Some(self.token.clone()),
        })
    }
}

/// Where the gateway of a [`KmsPath`] audits to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audit {
    /// A JSON-lines file in a temporary directory (what the gateway binary does).
    JsonLines,
    /// Nowhere.
    Null,
}

/// How the local proxy reaches the gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    /// It dials the gateway's listener.
    Direct,
    /// The gateway dials out to a relay (a third process), and the local proxy reaches it there.
    Relayed,
}

/// A local proxy and a gateway in front of an [`UpstreamNode`], each in its own process (and a
/// relay between them when [`Reach::Relayed`]).
#[derive(Debug)]
pub struct KmsPath {
    /// The relay process, on the relayed path.
    pub relay: Option<NodeProcess>,
    /// The gateway process.
    pub gateway: NodeProcess,
    /// The local proxy process.
    pub local: NodeProcess,
    local_token: String,
    audit_log: Option<(tempfile::TempDir, PathBuf)>,
}

impl KmsPath {
    /// Starts a gateway (auditing as `audit`) and a local proxy with one session.
    pub async fn start(exe: &Path, upstream: &UpstreamNode, audit: Audit) -> anyhow::Result<Self> {
        Self::start_reaching(exe, upstream, audit, Reach::Direct).await
    }

    /// [`start`](Self::start), the local proxy reaching the gateway as `reach` says.
    pub async fn start_reaching(
        exe: &Path,
        upstream: &UpstreamNode,
        audit: Audit,
        reach: Reach,
    ) -> anyhow::Result<Self> {
        let tunnel = TunnelMaterial::generate(GATEWAY_NAME)?;
        let relay = match reach {
            Reach::Direct => None,
            Reach::Relayed => {
                let spec = RelaySpec {
                    tls: tunnel.relay.clone(),
                };
                Some(NodeProcess::start(exe, Role::Relay, &spec).await?)
            }
        };
        let relays: Vec<String> = relay.iter().map(|r| r.ready.addr.to_string()).collect();
        let audit_log = match audit {
            Audit::Null => None,
            Audit::JsonLines => {
                let dir = tempfile::tempdir()?;
                let file = dir.path().join("audit.jsonl");
                Some((dir, file))
            }
        };
        let gateway_spec = GatewaySpec {
            name: GATEWAY_NAME.into(),
            tls: tunnel.gateway.clone(),
            sessions: vec![tunnel.session.clone()],
            upstream_url: upstream.url(),
            upstream_ca_pem: upstream.tls.ca_pem.clone(),
            token: upstream.token.clone(),
            audit: audit_log.as_ref().map_or(AuditSpec::Null, |(_, file)| {
                AuditSpec::JsonLines(file.clone())
            }),
            relays: relays.clone(),
        };
        let gateway = NodeProcess::start(exe, Role::Gateway, &gateway_spec).await?;
        let local_token = Secret::random(32)?.expose().to_owned();
        let local_spec = LocalProxySpec {
            local_token: local_token.clone(),
            kms_ca_pem: tunnel.gateway.ca_pem,
            session_cert_pem: tunnel.session_cert_pem,
            session_key_pem: tunnel.session_key_pem,
            gateway_addr: gateway.ready.addr.to_string(),
            relays,
            gateway_name: GATEWAY_NAME.into(),
        };
        let local = NodeProcess::start(exe, Role::LocalProxy, &local_spec).await?;
        Ok(Self {
            relay,
            gateway,
            local,
            local_token,
            audit_log,
        })
    }

    /// Access through the local proxy with the session kubeconfig's token, over `alpn`.
    pub fn endpoint(&self, alpn: &[&[u8]]) -> anyhow::Result<Endpoint> {
        let ca = self.local.ready.ca_pem.as_deref().unwrap_or_default();
        Ok(Endpoint {
            addr: self.local.ready.addr,
            tls: Some(pki::client_config(ca, alpn)?),
            bearer: Some(self.local_token.clone()),
        })
    }

    /// The processes, named, for memory readings.
    pub fn processes(&self) -> Vec<(&'static str, u32)> {
        let mut processes = vec![
            ("local proxy", self.local.pid()),
            ("gateway", self.gateway.pid()),
        ];
        processes.extend(self.relay.as_ref().map(|r| ("relay", r.pid())));
        processes
    }

    /// Stops both (the gateway flushes its audit log) and returns the number of audit events
    /// written, when auditing to a file.
    pub async fn stop(self) -> anyhow::Result<Option<usize>> {
        self.local.stop().await?;
        self.gateway.stop().await?;
        if let Some(relay) = self.relay {
            relay.stop().await?;
        }
        let Some((_dir, file)) = self.audit_log else {
            return Ok(None);
        };
        let text = std::fs::read(&file)?;
        Ok(Some(text.iter().filter(|&&b| b == b'\n').count()))
    }
}
