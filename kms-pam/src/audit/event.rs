//! The typed events a session produces.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::kube::request_info::{RequestInfo, StreamKind};
use crate::session::{SessionId, SessionStatus};

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
    /// What happened.
    #[serde(flatten)]
    pub kind: AuditEventKind,
}

impl AuditEvent {
    /// A new event happening now.
    pub fn now(session_id: SessionId, kind: AuditEventKind) -> Self {
        Self {
            id: uuid::Uuid::new_v4(),
            session_id,
            time: SystemTime::now(),
            kind,
        }
    }
}

/// The kinds of events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuditEventKind {
    /// The gateway accepted the session's first tunnel.
    SessionStarted {
        /// User.
        user: String,
        /// PAM resource.
        resource: String,
        /// PAM account.
        account: String,
        /// Gateway.
        gateway: String,
    },
    /// The session stopped being active at the gateway.
    SessionEnded {
        /// Final status.
        status: SessionStatus,
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
