//! The JSON shapes of the KMS HTTP API (docs/api.md), shared by the server and the client.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::session::{EndCause, Session};

/// Prefix of user API tokens.
pub const USER_TOKEN_PREFIX: &str = "kmsu_";
/// Prefix of gateway API tokens.
pub const GATEWAY_TOKEN_PREFIX: &str = "kmsg_";
/// Prefix of one-time gateway enrollment tokens.
pub const ENROLLMENT_TOKEN_PREFIX: &str = "kmse_";

/// `{"error": {...}}` bodies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The code and message of an API error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// `unauthenticated`, `forbidden`, `not_found`, `conflict`, `invalid`, `unavailable`, `internal`.
    pub code: String,
    /// One line a person can act on; never a secret.
    pub message: String,
}

/// `GET /v1/whoami`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhoAmI {
    /// User or gateway name.
    pub name: String,
    /// `user` or `gateway`.
    pub kind: String,
    /// Whether the user is an administrator.
    pub admin: bool,
}

/// A user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Name.
    pub name: String,
    /// Administrator.
    pub admin: bool,
    /// Creation time.
    #[serde(with = "crate::time::rfc3339")]
    pub created_at: SystemTime,
}

/// `POST /v1/users` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateUser {
    /// Name.
    pub name: String,
    /// Administrator.
    #[serde(default)]
    pub admin: bool,
}

/// `POST /v1/users` answer: the only time the token is shown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedUser {
    /// The user.
    pub user: User,
    /// Its API token (`kmsu_…`).
    pub token: String,
}

/// A gateway.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gateway {
    /// Name.
    pub name: String,
    /// Address CLIs dial (`host:port`), once enrolled.
    pub address: Option<String>,
    /// `online`, `offline` or `pending` (not enrolled yet).
    pub status: String,
    /// Last heartbeat.
    #[serde(with = "crate::time::rfc3339_option", default)]
    pub last_heartbeat: Option<SystemTime>,
    /// Creation time.
    #[serde(with = "crate::time::rfc3339")]
    pub created_at: SystemTime,
}

/// `POST /v1/gateways` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateGateway {
    /// Name.
    pub name: String,
}

/// `POST /v1/gateways` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedGateway {
    /// The gateway.
    pub gateway: Gateway,
    /// One-time enrollment token (`kmse_…`).
    pub enrollment_token: String,
    /// When the enrollment token stops working.
    #[serde(with = "crate::time::rfc3339")]
    pub expires_at: SystemTime,
}

/// `POST /v1/gateways/enroll` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollGateway {
    /// Gateway name.
    pub name: String,
    /// The one-time token.
    pub enrollment_token: String,
    /// CSR for the gateway's server certificate (PEM).
    pub csr: String,
    /// Address CLIs will dial (`host:port`).
    pub address: String,
}

/// `POST /v1/gateways/enroll` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrolledGateway {
    /// Server certificate (PEM).
    pub certificate: String,
    /// The KMS CA (PEM).
    pub ca_certificate: String,
    /// The gateway's API token (`kmsg_…`).
    pub gateway_token: String,
}

/// A PAM resource (a Kubernetes cluster).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    /// Name.
    pub name: String,
    /// `kubernetes`.
    pub kind: String,
    /// API server URL.
    pub url: String,
    /// Gateway name.
    pub gateway: String,
    /// Whether the API server certificate is verified.
    pub ssl_verify: bool,
    /// CA bundle (PEM) to verify it with; system roots when absent.
    pub ca_cert: Option<String>,
    /// Creation time.
    #[serde(with = "crate::time::rfc3339")]
    pub created_at: SystemTime,
}

/// `POST /v1/resources` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateResource {
    /// `kubernetes`.
    pub kind: String,
    /// Name.
    pub name: String,
    /// API server URL.
    pub url: String,
    /// Gateway name.
    pub gateway: String,
    /// Verify the API server certificate.
    #[serde(default = "default_true")]
    pub ssl_verify: bool,
    /// CA bundle (PEM).
    #[serde(default)]
    pub ca_cert: Option<String>,
}

fn default_true() -> bool {
    true
}

/// A PAM account. Never carries its token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Resource name.
    pub resource: String,
    /// Account name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Longest session allowed.
    pub max_duration_secs: u64,
    /// Creation time.
    #[serde(with = "crate::time::rfc3339")]
    pub created_at: SystemTime,
}

/// `POST /v1/resources/{r}/accounts` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateAccount {
    /// Account name.
    pub name: String,
    /// The service-account token (stored encrypted, never returned).
    pub token: String,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Longest session allowed (default 8 h).
    #[serde(default)]
    pub max_duration_secs: Option<u64>,
}

/// A grant: a user may open sessions for an account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Identifier.
    pub id: String,
    /// Resource.
    pub resource: String,
    /// Account.
    pub account: String,
    /// User.
    pub user: String,
    /// Longest session the grant allows.
    pub max_duration_secs: u64,
    /// Creation time.
    #[serde(with = "crate::time::rfc3339")]
    pub created_at: SystemTime,
}

/// `POST /v1/grants` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateGrant {
    /// Resource.
    pub resource: String,
    /// Account.
    pub account: String,
    /// User.
    pub user: String,
    /// Longest session (default: the account's maximum).
    #[serde(default)]
    pub max_duration_secs: Option<u64>,
}

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
