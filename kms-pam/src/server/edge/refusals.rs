//! Refused requests are visible: every 401 and 403 answer is logged (who, route, source
//! address; never a token) and counted in `/metrics`, in this one middleware. Failed
//! authentications also cost their source from its budget (`failure_budget.rs`); requests
//! without any credential are logged and counted but cost nothing: they guess nothing.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use crate::server::edge::state::AppState;
use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::request::Parts;
use http::StatusCode;
use tokio::time::Instant;

/// Who a request turned out to be, filled in by the authentication extractor so the middleware
/// can log it: `user alice`, `gateway gw-1`, `unknown user token`. Empty when no credential was
/// presented.
#[derive(Clone, Debug, Default)]
pub(crate) struct CallerSlot(Arc<Mutex<Option<String>>>);

impl CallerSlot {
    /// Records who presented the credential.
    pub(crate) fn set(&self, who: impl Into<String>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(who.into());
    }

    fn get(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Records who is calling in the request's [`CallerSlot`], if the middleware put one there.
pub(crate) fn record_caller(extensions: &http::Extensions, who: impl Into<String>) {
    if let Some(slot) = extensions.get::<CallerSlot>() {
        slot.set(who);
    }
}

/// A handler's handle on the request's [`CallerSlot`], for credentials checked outside the
/// authentication extractors (enrollment tokens).
#[derive(Debug, Clone)]
pub(crate) struct Attempt(Option<CallerSlot>);

impl Attempt {
    /// Records who presented the credential.
    pub(crate) fn record(&self, who: impl Into<String>) {
        if let Some(slot) = &self.0 {
            slot.set(who);
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Attempt {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(Self(parts.extensions.get::<CallerSlot>().cloned()))
    }
}

/// The middleware: logs and counts 401 and 403 answers, and holds failed authentications of a
/// source over its budget.
pub(crate) async fn watch_refusals(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let source = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().clone();
    let slot = CallerSlot::default();
    request.extensions_mut().insert(slot.clone());
    let response = next.run(request).await;
    let status = response.status();
    if status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN {
        return response;
    }
    let who = slot.get();
    let shown_source = source.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
    tracing::warn!(
        status = status.as_u16(),
        %method,
        %route,
        source = %shown_source,
        who = who.as_deref().unwrap_or("anonymous (no credential)"),
        "request refused"
    );
    state.metrics.refused(status, &route);
    if status == StatusCode::UNAUTHORIZED && who.is_some() {
        if let Some(ip) = source {
            let delay = state.failures.charge(ip, Instant::now());
            if !delay.is_zero() {
                state.metrics.delayed();
                tokio::time::sleep(delay).await;
            }
        }
    }
    response
}
