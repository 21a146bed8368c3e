//! Hooks: how an embedder adds a stage to the proxy, with a method per request phase.
//!
//! Phase order at the gateway, for every request (drawn once, in docs/architecture.md):
//!
//! ```text
//! classify ─▶ audit start ─▶ first stages: on_request ─▶ session check ─▶ stages: on_request
//!          ─▶ header policy + credential ─▶ upstream
//!                                             │
//!   client ◀── audit tap ◀── on_logging (every stage, every answered request)
//!                        ◀── on_response (every stage, in reverse order) ◀──┘
//! ```
//!
//! The local proxy runs the same phases after its local-token check and before the tunnel.
//! Every method has a default that does nothing, so a stage implements only the phases it needs.
//! State a stage wants to keep from one phase to the next goes in [`RequestContext::state`].

use std::sync::Arc;

use async_trait::async_trait;
use http::StatusCode;

use super::error::ProxyError;
use crate::kube::RequestInfo;
use crate::session::Session;

/// Which end of the path is running the hooks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxySide {
    /// The loopback proxy on the user's machine: the request has not left it yet.
    Local,
    /// The gateway: the session is admitted and the request is about to reach the API server.
    Gateway,
}

/// What a stage may know about the request in hand, and the request's own state.
#[derive(Debug)]
#[non_exhaustive]
pub struct RequestContext<'a> {
    /// Which proxy is running the stage.
    pub side: ProxySide,
    /// The session, as KMS described it (at the gateway; the local proxy does not hold it, and
    /// a request on a tunnel the gateway refused has none: only `on_logging` sees those).
    pub session: Option<&'a Session>,
    /// The request's Kubernetes meaning.
    pub info: &'a RequestInfo,
    /// The request id (used in audit events at the gateway).
    pub request_id: u64,
    /// Per-request state kept across phases: what a stage inserts in `on_request` it finds again
    /// in `on_response` and `on_logging` (typed by Rust type, like `http::Extensions`).
    pub state: http::Extensions,
}

impl<'a> RequestContext<'a> {
    pub(crate) fn new(
        side: ProxySide,
        session: Option<&'a Session>,
        info: &'a RequestInfo,
        request_id: u64,
    ) -> Self {
        Self {
            side,
            session,
            info,
            request_id,
            state: http::Extensions::new(),
        }
    }
}

/// How a request was answered, as the logging phase sees it.
#[derive(Debug)]
#[non_exhaustive]
pub struct RequestOutcome<'a> {
    /// The status sent to the client (`101` for an upgraded stream).
    pub status: StatusCode,
    /// Why the path answered itself instead of the API server, if it did.
    pub error: Option<&'a ProxyError>,
}

/// Phase methods called by the proxy engine: a stage of the request pipeline.
#[async_trait]
pub trait ProxyHooks: Send + Sync + 'static {
    /// Before anything is forwarded. Return an error (e.g. [`ProxyError::forbidden`]) to refuse:
    /// the client gets it as a Kubernetes `Status`, and the refusal is audited. Headers may be
    /// changed; the header policy still runs afterwards, so a stage cannot reintroduce
    /// `Authorization` or `Impersonate-*`.
    async fn on_request(
        &self,
        _ctx: &mut RequestContext<'_>,
        _request: &mut http::request::Parts,
    ) -> Result<(), ProxyError> {
        Ok(())
    }

    /// After the API server (or the gateway) answered, before the response goes back. Runs only
    /// when the request was forwarded.
    fn on_response(&self, _ctx: &mut RequestContext<'_>, _response: &mut http::response::Parts) {}

    /// Once for every answered request — forwarded, refused by any stage or check (also the
    /// local proxy's token check and a tunnel the gateway refused, which no `on_request` sees),
    /// or failed — when its response head is decided (a stream's body may still be flowing).
    fn on_logging(&self, _ctx: &RequestContext<'_>, _outcome: &RequestOutcome<'_>) {}
}

/// The hooks of a stage that adds nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoHooks;

impl ProxyHooks for NoHooks {}

#[async_trait]
impl<T: ProxyHooks + ?Sized> ProxyHooks for Arc<T> {
    async fn on_request(
        &self,
        ctx: &mut RequestContext<'_>,
        request: &mut http::request::Parts,
    ) -> Result<(), ProxyError> {
        (**self).on_request(ctx, request).await
    }

    fn on_response(&self, ctx: &mut RequestContext<'_>, response: &mut http::response::Parts) {
        (**self).on_response(ctx, response);
    }

    fn on_logging(&self, ctx: &RequestContext<'_>, outcome: &RequestOutcome<'_>) {
        (**self).on_logging(ctx, outcome);
    }
}

/// An ordered list of stages run as one: requests front to back, responses back to front.
#[derive(Clone, Default)]
pub(crate) struct Stages(Vec<Arc<dyn ProxyHooks>>);

impl Stages {
    pub(crate) fn push(&mut self, stage: Arc<dyn ProxyHooks>) {
        self.0.push(stage);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) async fn on_request(
        &self,
        ctx: &mut RequestContext<'_>,
        request: &mut http::request::Parts,
    ) -> Result<(), ProxyError> {
        for stage in &self.0 {
            stage.on_request(ctx, request).await?;
        }
        Ok(())
    }

    pub(crate) fn on_response(
        &self,
        ctx: &mut RequestContext<'_>,
        response: &mut http::response::Parts,
    ) {
        for stage in self.0.iter().rev() {
            stage.on_response(ctx, response);
        }
    }

    pub(crate) fn on_logging(&self, ctx: &RequestContext<'_>, outcome: &RequestOutcome<'_>) {
        for stage in &self.0 {
            stage.on_logging(ctx, outcome);
        }
    }
}

impl std::fmt::Debug for Stages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Stages({})", self.0.len())
    }
}
