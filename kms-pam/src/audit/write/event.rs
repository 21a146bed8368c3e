//! The typed events a session produces.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::kube::request_info::{RequestInfo, StreamKind};
use crate::session::{SessionBinding, SessionId, SessionStatus};

/// One thing that happened in a session.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Unique id; stores use it to keep each event once, whatever the retries.
    pub id: uuid::Uuid,
    /// The session it belongs to.
    pub session_id: SessionId,
    /// When it happened.
    #[serde(with = "crate::time::rfc3339_millis")]
    pub time: SystemTime,
    /// Position in the session's hash chain: 1, 2, 3, … (see [`crate::audit::evidence::chain`]); 0, and
    /// left out of the JSON, until a [`ChainingSink`](crate::audit::ChainingSink) assigns it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub seq: u64,
    /// Hex SHA-256 `hash` of the session's previous event (64 zeros for the first); empty, and
    /// left out of the JSON, until chained.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prev_hash: String,
    /// Hex SHA-256 over `prev_hash` and this event's canonical JSON without `hash`; empty, and
    /// left out of the JSON, until chained.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hash: String,
    /// The gateway's Ed25519 signature (base64) of the chain link (`hash`), see
    /// [`crate::audit::evidence::signing`]; empty, and left out of the JSON, until signed. Neither `hash`
    /// nor `sig` is covered by `hash`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sig: String,
    /// What happened.
    #[serde(flatten)]
    pub kind: AuditEventKind,
}

/// The last link of a session's chain (its last event's `seq` and `hash`): what the next event
/// continues from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    /// The last event's `seq`.
    pub seq: u64,
    /// The last event's `hash`.
    pub hash: String,
}

impl AuditEvent {
    /// A new event happening now.
    pub fn now(session_id: SessionId, kind: AuditEventKind) -> Self {
        Self {
            id: uuid::Uuid::new_v4(),
            session_id,
            time: SystemTime::now(),
            seq: 0,
            prev_hash: String::new(),
            hash: String::new(),
            sig: String::new(),
            kind,
        }
    }
}

// Chain fields are skipped when unset so that unchained events keep their earlier JSON form, and
// so that adding them changed no existing event's canonical bytes.
fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The kinds of events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuditEventKind {
    /// The gateway accepted the session's first tunnel. It binds the session's metadata, as KMS
    /// described it to the gateway, into the signed chain; `sessions verify` compares it with
    /// what KMS holds.
    SessionStarted {
        /// User.
        user: String,
        /// PAM resource.
        resource: String,
        /// PAM account.
        account: String,
        /// Gateway.
        gateway: String,
        /// The reason the user gave. Compared only when `created_at` is present (events written
        /// before the metadata was bound have neither).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// When KMS created the session.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            with = "crate::time::rfc3339_option"
        )]
        created_at: Option<SystemTime>,
        /// When the session expires.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            with = "crate::time::rfc3339_option"
        )]
        expires_at: Option<SystemTime>,
        /// The project, user id and client KMS bound the session to. Absent where no KMS
        /// keeps projects (a standalone gateway) and in events written before they were bound;
        /// when present, all of it is compared (boxed: it is the largest part of any event).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        binding: Option<Box<SessionBinding>>,
    },
    /// The session stopped being active at the gateway: the last event of its chain (the
    /// gateway waits for the session's requests and recordings to report their ends first),
    /// which KMS countersigns once it holds it.
    SessionEnded {
        /// Final status: KMS's when KMS said the session had ended (`ended_at` is then set),
        /// else what the gateway saw (its clock reached the expiry, or it lost KMS).
        status: SessionStatus,
        /// When the session ended, as KMS held it when the gateway recorded its end; absent
        /// when KMS had not ended it yet (the gateway stopped first) or could not be asked.
        /// Compared by `sessions verify` with what KMS holds now, with `status` and
        /// `end_cause`.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            with = "crate::time::rfc3339_option"
        )]
        ended_at: Option<SystemTime>,
        /// Why it ended, as KMS names the cause (`user`, `expiry`, …), when KMS said so.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        end_cause: Option<String>,
    },
    /// A request arrived and is about to be forwarded (or refused). Boxed: it is by far the
    /// largest kind, and every event would otherwise be that large.
    RequestStarted(Box<RequestStarted>),
    /// A request's response finished (body fully sent, or cut).
    RequestFinished(RequestFinished),
    /// A long-running stream began (watch, logs -f, exec, attach, port-forward).
    StreamOpened {
        /// The request that opened it.
        request_id: u64,
        /// What it is.
        stream: StreamKind,
    },
    /// A stream ended.
    StreamClosed(StreamClosed),
    /// What an upgraded stream is (exec command, container, tty, forwarded ports) and whether
    /// its bytes are recorded. Emitted once, when the upgrade succeeds.
    StreamDetails(Box<StreamDetails>),
    /// A piece of a recorded stream's bytes on one channel (see [`crate::audit::recording`]).
    StreamData(StreamData),
    /// A stream's recording ended: how much was kept, and whether the cap cut it.
    RecordingEnded(RecordingEnded),
}

/// A request as kubectl sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RequestStarted {
    /// Identifies the request within its session.
    pub request_id: u64,
    /// HTTP method.
    pub method: String,
    /// Path, as received.
    pub path: String,
    /// Query string, as received.
    pub query: Option<String>,
    /// The Kubernetes meaning: verb, group, resource, namespace, name...
    pub info: RequestInfo,
    /// `Kubectl-Command` header (`kubectl get`).
    pub kubectl_command: Option<String>,
    /// `Kubectl-Session` header: one id per kubectl process.
    pub kubectl_session: Option<String>,
    /// `User-Agent` header.
    pub user_agent: Option<String>,
    /// The impersonation the client asked for and the gateway dropped (`kubectl --as`,
    /// `--as-group`: `Impersonate-User: bob; Impersonate-Group: admins`): a session acts only
    /// as its account's service account. Absent when none was asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impersonation: Option<String>,
}

/// How a request ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestFinished {
    /// The request.
    pub request_id: u64,
    /// HTTP status sent to the client.
    pub status: u16,
    /// Request body bytes received from the client.
    pub bytes_in: u64,
    /// Response body bytes sent to the client.
    pub bytes_out: u64,
    /// From arrival to the end of the response body, in milliseconds.
    pub duration_ms: u64,
    /// Why it failed or was cut, if it did.
    pub error: Option<String>,
}

/// How a stream ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StreamClosed {
    /// The request that opened it.
    pub request_id: u64,
    /// What it was.
    pub stream: StreamKind,
    /// Bytes from the client.
    pub bytes_in: u64,
    /// Bytes to the client.
    pub bytes_out: u64,
    /// How long it was open, in milliseconds.
    pub duration_ms: u64,
    /// Why it closed, when not by either side normally (`session expired`, ...).
    pub reason: Option<String>,
}

/// What an upgraded stream is, read from its request and its `101` answer.
///
/// New fields must be optional and skipped when unset: the hash chain covers each event's JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamDetails {
    /// The request that opened it.
    pub request_id: u64,
    /// What it is.
    pub stream: StreamKind,
    /// `exec`: the command and its arguments (the `command=` query values, in order).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// `exec`/`attach`: the container (`container=`), when named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// `exec`/`attach`: whether a terminal was asked for (`tty=true`, `kubectl exec -t`).
    #[serde(default)]
    pub tty: bool,
    /// `exec`/`attach`: whether stdin is attached (`stdin=true`, `kubectl exec -i`).
    #[serde(default)]
    pub stdin: bool,
    /// `port-forward`: the pod ports (`ports=` query values), when the request names them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
    /// The negotiated WebSocket subprotocol (`v5.channel.k8s.io`), or the `Upgrade` protocol
    /// (`SPDY/3.1`) when it is not a WebSocket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Whether the stream's bytes are recorded: `StreamData` events and a `RecordingEnded`
    /// follow.
    #[serde(default)]
    pub recorded: bool,
}

/// A piece of a recorded stream: the payload bytes of one channel, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamData {
    /// The request that opened the stream.
    pub request_id: u64,
    /// The Kubernetes channel: 0 stdin, 1 stdout, 2 stderr, 3 status, 4 resize, 255 close (v5).
    pub channel: u8,
    /// Bytes of this channel before this piece, counting bytes seen but not recorded.
    pub offset: u64,
    /// The bytes, base64 (standard alphabet, padded).
    pub data_base64: String,
}

/// How a stream's recording ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingEnded {
    /// The request that opened the stream.
    pub request_id: u64,
    /// Payload bytes kept in `StreamData` events.
    pub recorded_bytes: u64,
    /// Payload bytes seen on every channel, recorded or not.
    pub total_bytes: u64,
    /// Whether some payload was not recorded (cap reached, recorder behind, unreadable frames).
    pub truncated: bool,
    /// Why it was truncated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The WebSocket close code, when a close frame was seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close_code: Option<u16>,
    /// What a cap left out, per channel: from which offset, and how many bytes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gaps: Vec<RecordingGap>,
}

/// Bytes of one channel a recording left out (a cap was reached): the channel's bytes from
/// `offset` on, `bytes` of them, were seen but not kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingGap {
    /// The channel.
    pub channel: u8,
    /// Bytes of the channel before the gap.
    pub offset: u64,
    /// Bytes not recorded.
    pub bytes: u64,
}
