//! Sessions, the gateway's link, and session history: the second half of the API shapes.

use serde::{Deserialize, Serialize};

pub use crate::audit::evidence::signing::PublicKey;
pub use crate::audit::evidence::SessionBundle;
pub use crate::audit::recording::RecordingPolicy;
pub use crate::audit::{ChainReport, Command, RequestSummary, StreamSummary};
use crate::credential::sealing::{SealedToken, SealingPublicKey};
use crate::session::SessionView;

/// `POST /v1/sessions` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateSession {
    /// Resource.
    pub resource: String,
    /// Account.
    pub account: String,
    /// Requested lifetime.
    pub duration_secs: u64,
    /// Why.
    #[serde(default)]
    pub reason: Option<String>,
    /// The CLI's CSR (PEM).
    pub csr: String,
}

/// `POST /v1/sessions` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedSession {
    /// The session.
    pub session: SessionView,
    /// Client certificate for the tunnel (PEM).
    pub certificate: String,
    /// The KMS CA (PEM), to verify the gateway.
    pub ca_certificate: String,
    /// Where the gateway listens (`host:port`). For a gateway reached only through relays
    /// (`direct` false) it is not dialled: its host is the name the gateway's certificate
    /// carries, which the CLI checks inside the relayed tunnel.
    pub gateway_address: String,
    /// Whether the CLI may dial `gateway_address`; absent (an older KMS): yes.
    #[serde(default = "yes")]
    pub direct: bool,
    /// The relays that hold a tunnel from the gateway now (`host:port`), to be tried in this
    /// order; empty for a gateway that dials out to no relay.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relays: Vec<String>,
}

fn yes() -> bool {
    true
}

/// `POST /v1/gateway/heartbeat` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The gateway's current address.
    pub address: String,
    /// How CLIs reach it; absent (an older gateway): directly at `address`.
    #[serde(default)]
    pub reach: GatewayReach,
}

/// How CLIs reach a gateway: at its address, through the relays it dials out to, or both.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayReach {
    /// Whether the gateway listens for CLIs at its address.
    #[serde(default = "yes")]
    pub direct: bool,
    /// The relays it dials out to, in the order it was given them.
    #[serde(default)]
    pub relays: Vec<RelayLink>,
}

impl Default for GatewayReach {
    fn default() -> Self {
        Self {
            direct: true,
            relays: Vec::new(),
        }
    }
}

/// As people read it (`kms-pam gateway list`, the console): `direct`, `relays r1:443 (up),
/// r2:443 (down)`, `direct + relays …`, or `none` for a gateway that neither listens for CLIs
/// nor dials any relay.
impl std::fmt::Display for GatewayReach {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.direct, self.relays.is_empty()) {
            (true, true) => return f.write_str("direct"),
            (false, true) => return f.write_str("none"),
            (true, false) => f.write_str("direct + relays ")?,
            (false, false) => f.write_str("relays ")?,
        }
        for (i, relay) in self.relays.iter().enumerate() {
            let state = if relay.connected { "up" } else { "down" };
            let comma = if i == 0 { "" } else { ", " };
            write!(f, "{comma}{} ({state})", relay.url)?;
        }
        Ok(())
    }
}

/// One relay a gateway dials out to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayLink {
    /// The relay (`host:port`).
    pub url: String,
    /// Whether the gateway holds a live tunnel to it now.
    pub connected: bool,
}

/// `POST /v1/gateway/certificate` body: a gateway renews its identity certificate (for the
/// same key or a new one; the names are the ones KMS holds for it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewGatewayCertificate {
    /// CSR (PEM).
    pub csr: String,
}

/// `POST /v1/gateway/certificate` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewedGatewayCertificate {
    /// The new certificate (PEM).
    pub certificate: String,
    /// The KMS CA (PEM).
    pub ca_certificate: String,
}

/// `POST /v1/relays/certificate` body (organisation admins): a relay's serving certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueRelayCertificate {
    /// The relay's name, written into the certificate as `kms-pam://relay/<name>`.
    pub name: String,
    /// The DNS names or IP addresses CLIs and gateways dial it at.
    pub names: Vec<String>,
    /// CSR (PEM); only its public key is used.
    pub csr: String,
}

/// `POST /v1/relays/certificate` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayCertificate {
    /// The relay's certificate (PEM).
    pub certificate: String,
    /// The KMS CA (PEM): the relay verifies session and gateway certificates with it.
    pub ca_certificate: String,
    /// When the certificate expires.
    #[serde(with = "crate::time::rfc3339")]
    pub not_after: std::time::SystemTime,
}

/// `GET /v1/gateway/sessions/{id}/credential` answer: for the bound gateway only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayCredential {
    /// API server URL.
    pub url: String,
    /// Verify the API server certificate.
    pub ssl_verify: bool,
    /// CA bundle (PEM).
    pub ca_cert: Option<String>,
    /// The service-account token, sealed to the calling gateway's sealing key for this session
    /// (HPKE; [`SealingKey::open`](crate::credential::sealing::SealingKey::open)). KMS never
    /// sends it in clear.
    pub sealed_token: SealedToken,
    /// The resource's recording policy (refuse unrecordable streams, caps).
    #[serde(default)]
    pub recording: RecordingPolicy,
}

/// `GET /v1/gateway/changes` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changes {
    /// The sequence number to ask after next time.
    pub seq: u64,
    /// Status changes of the caller's sessions.
    pub changes: Vec<SessionChange>,
}

/// One session status change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionChange {
    /// Session id.
    pub session_id: String,
    /// New status.
    pub status: crate::session::SessionStatus,
}

/// `GET /v1/sessions/{id}` answer: the session and the commands run in it (docs/cli.md `pam sessions
/// show`), as [`group_commands`](crate::audit::group_commands) built them from its events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionDetail {
    /// The session.
    #[serde(flatten)]
    pub session: SessionView,
    /// kubectl invocations (one per `Kubectl-Session`), oldest first; empty when asked without
    /// them (`?commands=false`).
    #[serde(default)]
    pub commands: Vec<Command>,
    /// How far the session's record has reached KMS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<AuditProgress>,
    /// Where the session was requested from, as KMS saw the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<SessionClient>,
}

/// Where a session was requested from, as KMS saw its `POST /v1/sessions`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionClient {
    /// The network peer of the request (with a proxy in front of KMS, the proxy's address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The request's `User-Agent` (the CLI sends `kms-pam/VERSION`); client-supplied text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

/// How far a session's record has reached KMS: `pam access` waits, after ending a session,
/// until the gateway's signed end is stored and KMS signed the head, so the history read right
/// after is complete.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditProgress {
    /// Events stored.
    pub events: u64,
    /// The gateway's signed end (`session_ended`) is the last stored event.
    pub end_received: bool,
    /// KMS signed the session's head: its record is complete.
    pub sealed: bool,
}

/// `GET /v1/audit/keys`: the public keys a session's record is checked with (compare their
/// fingerprints with what KMS and each gateway printed when they made them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditKeys {
    /// KMS's key, which signs session heads.
    pub kms_key: PublicKey,
    /// Each gateway's key, which signs its events.
    pub gateways: Vec<GatewayAuditKey>,
}

/// A gateway's audit key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayAuditKey {
    /// Gateway name.
    pub gateway: String,
    /// Its public key.
    pub public_key: PublicKey,
}

/// `POST /v1/gateway/audit-key` body: a gateway enrolled before it had an audit key registers
/// one, once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterAuditKey {
    /// The gateway's public key.
    pub public_key: PublicKey,
}

/// `POST /v1/gateway/sealing-key` body: a gateway enrolled before sealing keys existed registers
/// the key KMS seals its credentials to, once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterSealingKey {
    /// The gateway's public sealing key (X25519, base64).
    pub public_key: SealingPublicKey,
}

/// `POST /v1/gateway/events` body: chained audit events, oldest first (a session's in `seq`
/// order).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UploadEvents {
    /// The events.
    pub events: Vec<crate::audit::AuditEvent>,
}

/// `POST /v1/gateway/events` answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadedEvents {
    /// Events stored by this call.
    pub stored: u64,
    /// Events of the batch that were already stored (a batch sent again).
    pub duplicates: u64,
}

/// `GET /v1/sessions/{id}/recordings/{n}` answer: the session's `n`-th recorded exec or attach
/// stream (1-based, the `recording` number its stream shows in `commands`), replayed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingView {
    /// Its number in the session.
    pub number: usize,
    /// The stream: request id, exec command, container, tty, protocol.
    pub details: crate::audit::StreamDetails,
    /// Whether everything the stream carried was recorded, to its end.
    pub complete: bool,
    /// Why part of it was not recorded, when it was cut.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated_reason: Option<String>,
    /// The command's exit code, from its final status.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// What the caps left out, per channel (0 stdin, 1 stdout, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gaps: Vec<crate::audit::RecordingGap>,
    /// stdout and stderr interleaved as recorded, base64 (standard alphabet, padded).
    pub output_base64: String,
}

impl RecordingView {
    /// The replayed output bytes; `None` if `output_base64` is not base64.
    pub fn output(&self) -> Option<Vec<u8>> {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(&self.output_base64)
            .ok()
    }
}
