//! Hooks: how an embedder adds behaviour to the proxy at named phases.
//!
//! Phase order at the gateway, for every request (drawn once, in docs/architecture.md):
//!
//! ```text
//! classify ─▶ session deadline ─▶ on_request ─▶ header policy ─▶ credential ─▶ upstream
//!                                                                              │
//!                             client ◀── audit tap ◀── on_response ◀───────────┘
//! ```
//!
//! Every method has a default that does nothing, so a hook implements only the phases it needs.

use async_trait::async_trait;

use super::error::ProxyError;
use crate::kube::RequestInfo;
use crate::session::Session;

/// What a hook may know about the request in hand.
#[derive(Debug)]
pub struct RequestContext<'a> {
    /// The session the request belongs to.
    pub session: &'a Session,
    /// The request's Kubernetes meaning.
    pub info: &'a RequestInfo,
    /// The request id used in audit events.
    pub request_id: u64,
}

/// Phase methods called by the proxy engine.
#[async_trait]
pub trait ProxyHooks: Send + Sync + 'static {
    /// Before anything is forwarded, after the session was checked. Return an error (e.g.
    /// [`ProxyError::forbidden`]) to refuse: the client gets it as a Kubernetes `Status`, and the
    /// refusal is audited. Headers may be changed; the header policy still runs afterwards, so a
    /// hook cannot reintroduce `Authorization` or `Impersonate-*`.
    async fn on_request(
        &self,
        _ctx: &RequestContext<'_>,
        _request: &mut http::request::Parts,
    ) -> Result<(), ProxyError> {
        Ok(())
    }

    /// After the API server answered, before the response goes back.
    fn on_response(&self, _ctx: &RequestContext<'_>, _response: &mut http::response::Parts) {}
}

/// The hooks of a proxy that adds nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoHooks;

impl ProxyHooks for NoHooks {}
