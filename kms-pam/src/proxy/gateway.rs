//! The gateway side of the engine: one request of an authenticated session, from the tunnel to the
//! API server and back. The layers are assembled here, in the order docs/architecture.md draws:
//! classify → audit start → session deadline → hooks → header policy → credential → upstream →
//! hooks → audit tap (bytes, end) → client; errors become a `Status` in [`rescue`] only.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use http::{header, Request, Response, StatusCode};
use hyper::body::Incoming;

use super::body::{self, ProxyBody};
use super::deadline::SessionDeadline;
use super::error::{rescue_for, ProxyError};
use super::headers;
use super::hooks::{ProxyHooks, RequestContext};
use super::stream::{splice, RequestBody, ResponseBody};
use super::tap::RequestTap;
use super::upstream::UpstreamClient;
use crate::audit::recording::RecordingConfig;
use crate::audit::{AuditEventKind, AuditSink, RequestStarted, StreamDetails};
use crate::kube::RequestInfo;
use crate::metrics::GatewayMetrics;
use crate::secret::Secret;
use crate::session::Session;

/// Everything the gateway holds for one active session.
pub struct GatewaySession {
    /// The session as KMS described it when the first tunnel arrived.
    pub session: Session,
    /// The account token, injected into every forwarded request.
    pub token: Secret,
    /// The API server of the session's resource.
    pub upstream: Arc<UpstreamClient>,
    /// When it stops.
    pub deadline: Arc<SessionDeadline>,
}

/// Forwards the requests of authenticated sessions to their API servers.
pub struct GatewayProxy {
    audit: Arc<dyn AuditSink>,
    metrics: Arc<GatewayMetrics>,
    hooks: Arc<dyn ProxyHooks>,
    recording: RecordingConfig,
    next_request_id: AtomicU64,
}

impl GatewayProxy {
    /// An engine recording to `audit` and `metrics`, and calling `hooks`.
    pub fn new(
        audit: Arc<dyn AuditSink>,
        metrics: Arc<GatewayMetrics>,
        hooks: Arc<dyn ProxyHooks>,
    ) -> Self {
        // Request ids only need to be unique within a session; a random start keeps them unique
        // across gateway restarts too.
        let mut seed = [0u8; 4];
        crate::secret::fill_random(&mut seed);
        Self {
            audit,
            metrics,
            hooks,
            recording: RecordingConfig::default(),
            next_request_id: AtomicU64::new(u64::from(u32::from_le_bytes(seed)) << 32),
        }
    }

    /// Records exec/attach streams with `config` instead of the default (1 MiB per stream).
    pub fn with_recording(mut self, config: RecordingConfig) -> Self {
        self.recording = config;
        self
    }

    /// Handles one request; never fails: errors are answered with a `Status`.
    pub async fn handle(
        &self,
        session: &GatewaySession,
        request: Request<Incoming>,
    ) -> Response<ProxyBody> {
        let (parts, body) = request.into_parts();
        let query = parts.uri.query();
        let info = RequestInfo::classify(&parts.method, parts.uri.path(), query);
        let stream = info.stream_kind(query);
        let request_id = self.next_request_id.fetch_add(1, Ordering::Relaxed);
        let tap = RequestTap::new(
            self.audit.clone(),
            self.metrics.clone(),
            session.session.id.clone(),
            request_id,
            stream,
        );
        tap.emit(AuditEventKind::RequestStarted(Box::new(started(
            request_id, &parts, &info,
        ))));

        let ctx = RequestContext {
            session: &session.session,
            info: &info,
            request_id,
        };
        let body = body::boxed(RequestBody::new(body::boxed(body), tap.clone()));
        let discovery = crate::kube::is_discovery_path(parts.uri.path());
        let (response, cut) = match self.forward(session, &ctx, parts, body, &tap).await {
            Ok(response) => (response, Some(session.deadline.cut())),
            Err(error) => {
                tracing::info!(session = %session.session.id, request = request_id,
                    status = error.status().as_u16(), error = %error, "request refused");
                tap.set_error(error.message());
                (rescue_for(&error, discovery), None)
            }
        };
        tap.set_status(response.status().as_u16());
        response.map(|b| body::boxed(ResponseBody::new(b, tap, cut).watch(stream)))
    }

    async fn forward(
        &self,
        session: &GatewaySession,
        ctx: &RequestContext<'_>,
        mut parts: http::request::Parts,
        body: ProxyBody,
        tap: &Arc<RequestTap>,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        session.deadline.check()?;
        self.hooks.on_request(ctx, &mut parts).await?;
        let upgrade = headers::is_upgrade(&parts.headers);
        let query = upgrade
            .then(|| parts.uri.query().map(str::to_owned))
            .flatten();
        headers::strip_hop_by_hop(&mut parts.headers, upgrade);
        headers::strip_impersonation(&mut parts.headers);
        headers::inject_bearer(&mut parts.headers, &session.token)
            .map_err(|e| ProxyError::control_plane(e.to_string()))?;
        // The client addressed the local proxy; the pool sets the API server's host.
        parts.headers.remove(header::HOST);
        parts.uri = session.upstream.uri_for(parts.uri.path_and_query())?;

        let mut request = Request::from_parts(parts, body);
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
        let mut response = session.upstream.send(request, upgrade).await?;
        let switched = response.status() == StatusCode::SWITCHING_PROTOCOLS;
        if let (Some(client_upgrade), true) = (client_upgrade, switched) {
            let server_upgrade = hyper::upgrade::on(&mut response);
            let recorder = ctx.info.stream_kind(query.as_deref()).and_then(|stream| {
                let details = StreamDetails::from_request(
                    ctx.request_id,
                    stream,
                    query.as_deref(),
                    response.headers(),
                );
                tap.start_recording(details, &self.recording)
            });
            let (tap, cut) = (tap.clone(), session.deadline.cut());
            tokio::spawn(async move {
                match tokio::try_join!(client_upgrade, server_upgrade) {
                    Ok((client, server)) => splice(client, server, tap, Some(cut), recorder).await,
                    Err(e) => tap.set_error(format!("upgrade failed: {e}")),
                }
            });
        }
        let (mut response_parts, response_body) = response.into_parts();
        headers::strip_hop_by_hop(&mut response_parts.headers, switched);
        self.hooks.on_response(ctx, &mut response_parts);
        Ok(Response::from_parts(
            response_parts,
            body::boxed(response_body),
        ))
    }
}

fn started(request_id: u64, parts: &http::request::Parts, info: &RequestInfo) -> RequestStarted {
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    RequestStarted {
        request_id,
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        info: info.clone(),
        kubectl_command: header("kubectl-command"),
        kubectl_session: header("kubectl-session"),
        user_agent: header("user-agent"),
    }
}
