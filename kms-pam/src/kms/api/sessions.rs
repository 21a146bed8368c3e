//! Sessions, the gateway's link, and session history: the second half of the API shapes.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::session::{EndCause, Session};

/// A session as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionView {
    /// The session.
    #[serde(flatten)]
    pub session: Session,
    /// Why it ended.
    #[serde(default)]
    pub end_cause: Option<EndCause>,
}

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
    /// Where the gateway listens (`host:port`).
    pub gateway_address: String,
}

/// `POST /v1/gateway/heartbeat` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The gateway's current address.
    pub address: String,
}

/// `GET /v1/gateway/sessions/{id}/credential` answer: for the bound gateway only.
#[derive(Clone, Serialize, Deserialize)]
pub struct GatewayCredential {
    /// API server URL.
    pub url: String,
    /// Verify the API server certificate.
    pub ssl_verify: bool,
    /// CA bundle (PEM).
    pub ca_cert: Option<String>,
    /// The service-account token.
    pub token: String,
}

impl std::fmt::Debug for GatewayCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayCredential")
            .field("url", &self.url)
            .field("ssl_verify", &self.ssl_verify)
            .field("token", &"[redacted]")
            .finish_non_exhaustive()
    }
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

/// `GET /v1/sessions/{id}` answer: the session and, once session tracking records them, the
/// commands run in it (SPEC §3 `pam sessions show`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionDetail {
    /// The session.
    #[serde(flatten)]
    pub session: SessionView,
    /// kubectl invocations (one per `Kubectl-Session`), oldest first.
    #[serde(default)]
    pub commands: Vec<SessionCommand>,
}

/// One kubectl invocation in a session, with its requests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionCommand {
    /// What kubectl said it was running (`kubectl get`), or the derived verb for other clients.
    pub command: String,
    /// Its first request.
    #[serde(with = "crate::time::rfc3339_millis")]
    pub started_at: SystemTime,
    /// Its requests, in order.
    #[serde(default)]
    pub requests: Vec<CommandRequest>,
    /// Further fields the server sends (streams, …), kept so clients can pass them on.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// One request of a [`SessionCommand`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandRequest {
    /// When it arrived.
    #[serde(with = "crate::time::rfc3339_millis")]
    pub time: SystemTime,
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Response status, once known.
    #[serde(default)]
    pub status: Option<u16>,
    /// Kubernetes verb (`get`, `list`, `watch`, …).
    #[serde(default)]
    pub verb: Option<String>,
    /// Kubernetes resource (`pods`).
    #[serde(default)]
    pub resource: Option<String>,
    /// Namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Object name.
    #[serde(default)]
    pub name: Option<String>,
    /// Further fields the server sends (`discovery`, byte counts, …), kept so clients can pass
    /// them on.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
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

/// `GET /v1/sessions/{id}/verify` answer: what checking the session's stored hash chain found
/// (`{"result":"intact","count":12}` or `{"result":"broken","seq":3,"event_id":…,"reason":…}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum SessionVerification {
    /// Every link holds.
    Intact {
        /// Events checked.
        count: usize,
    },
    /// The first link that does not hold.
    Broken {
        /// The position (1-based) where the chain breaks.
        seq: u64,
        /// The id of the event found there.
        event_id: String,
        /// What is wrong, for a person.
        reason: String,
    },
}

impl From<crate::audit::ChainReport> for SessionVerification {
    fn from(report: crate::audit::ChainReport) -> Self {
        match report {
            crate::audit::ChainReport::Intact { count } => Self::Intact { count },
            crate::audit::ChainReport::Broken {
                seq,
                event_id,
                reason,
            } => Self::Broken {
                seq,
                event_id,
                reason,
            },
        }
    }
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
