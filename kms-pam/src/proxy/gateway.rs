//! The gateway side of the engine: one request of an authenticated session, from the tunnel to the
//! API server and back. The layers are assembled here, in the order docs/architecture.md draws:
//! classify → audit start → first stages → session check → stages → header policy + credential →
//! upstream → stages' responses → audit tap (bytes, end) → client; errors become a `Status` in
//! [`rescue_for`] only, and every stage's logging phase sees the outcome.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::body::{self, BoxError, ProxyBody};
use super::deadline::SessionDeadline;
use super::error::{rescue_for, ProxyError};
use super::headers;
use super::hooks::{ProxySide, RequestContext, RequestOutcome};
use super::in_flight::{InFlight, InFlightGuard};
use super::pipeline::Pipeline;
use super::recording_gate;
use super::stream::{splice, RequestBody, ResponseBody, SessionCut};
use super::tap::RequestTap;
use super::upstream::UpstreamClient;
use crate::audit::recording::{RecordingPolicy, UnrecordedStreams};
use crate::audit::{AuditEventKind, AuditSink, RequestStarted, StreamDetails};
use crate::kube::{RequestInfo, Status};
use crate::secret::Secret;
use crate::session::{Session, SessionStatus};

/// Everything the gateway holds for one active session.
pub struct GatewaySession {
    session: Session,
    token: Secret,
    upstream: Arc<dyn UpstreamClient>,
    deadline: Arc<SessionDeadline>,
    recording: RecordingPolicy,
    in_flight: InFlight,
}

impl GatewaySession {
    /// A session admitted to forward to `upstream` with the account's `token`, until its expiry
    /// or [`GatewaySession::stop`], under the default recording policy (streams that cannot be
    /// recorded are refused).
    pub fn new(session: Session, token: Secret, upstream: Arc<dyn UpstreamClient>) -> Self {
        let deadline = SessionDeadline::new(session.id.clone(), session.expires_at);
        Self::with_deadline(session, token, upstream, deadline)
    }

    pub(crate) fn with_deadline(
        session: Session,
        token: Secret,
        upstream: Arc<dyn UpstreamClient>,
        deadline: Arc<SessionDeadline>,
    ) -> Self {
        Self {
            session,
            token,
            upstream,
            deadline,
            recording: RecordingPolicy::default(),
            in_flight: InFlight::default(),
        }
    }

    /// Under the resource's recording policy instead of the default.
    pub fn with_recording(mut self, recording: RecordingPolicy) -> Self {
        self.recording = recording;
        self
    }

    pub(crate) fn with_in_flight(mut self, in_flight: InFlight) -> Self {
        self.in_flight = in_flight;
        self
    }

    /// The session as KMS described it when its first tunnel arrived.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Stops the session here: later requests are refused, open streams are cut.
    pub fn stop(&self, status: SessionStatus) {
        self.deadline.end(status);
    }

    pub(crate) fn deadline(&self) -> &Arc<SessionDeadline> {
        &self.deadline
    }
}

impl std::fmt::Debug for GatewaySession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewaySession")
            .field("session", &self.session.id)
            .field("stopped", &self.deadline.stopped())
            .finish_non_exhaustive()
    }
}

/// Forwards the requests of authenticated sessions to their API servers through a [`Pipeline`].
pub struct GatewayProxy {
    audit: Arc<dyn AuditSink>,
    pipeline: Pipeline,
    next_request_id: AtomicU64,
    /// Upgraded streams outlive their request; tracked so their last audit events are written
    /// before the gateway flushes at shutdown.
    splices: TaskTracker,
    /// Every request whose last audit events are not written yet (its tap not dropped), counted
    /// from the moment the connection hands it over: the gateway's final flush waits for them.
    pending: InFlight,
    /// Cancelled when the gateway stops: open streams (watches, follows, upgraded streams) end.
    stopping: CancellationToken,
}

impl GatewayProxy {
    /// An engine running `pipeline` and recording to `audit`.
    pub fn new(pipeline: Pipeline, audit: Arc<dyn AuditSink>) -> Self {
        // Request ids only need to be unique within a session; a random start keeps them unique
        // across gateway restarts too.
        let mut seed = [0u8; 4];
        if crate::secret::fill_random(&mut seed).is_err() {
            // Only uniqueness matters here: the clock will do.
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
            seed = now.map_or(0, |d| d.subsec_nanos()).to_le_bytes();
        }
        Self {
            audit,
            pipeline,
            next_request_id: AtomicU64::new(u64::from(u32::from_le_bytes(seed)) << 32),
            splices: TaskTracker::new(),
            pending: InFlight::default(),
            stopping: CancellationToken::new(),
        }
    }

    /// The pipeline this engine runs.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// Counts a request from the moment its connection hands it over (before its handler first
    /// runs), so that [`GatewayProxy::drain`] cannot miss one whose task has not started yet.
    pub(crate) fn admit(&self) -> InFlightGuard {
        self.pending.enter()
    }

    /// Ends the open streams (watches and follows with a `Status`, upgraded streams by closing
    /// them); requests arriving later get streams that end at once. Plain requests are left to
    /// finish within their connection's drain.
    pub(crate) fn stop_streams(&self) {
        self.stopping.cancel();
    }

    /// Waits, at most `limit`, until every request has written its last audit events (its tap
    /// dropped, upgraded streams and their recorders ended). Returns how many requests and
    /// stream tasks have not.
    pub(crate) async fn drain(&self, limit: std::time::Duration) -> usize {
        let deadline = tokio::time::Instant::now() + limit;
        self.splices.close();
        let _ = tokio::time::timeout_at(deadline, self.splices.wait()).await;
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if self.pending.idle(left).await {
            0
        } else {
            self.pending.count() + self.splices.len()
        }
    }

    /// Handles one request; never fails: errors are answered with a `Status`. Any body type
    /// will do: hyper's `Incoming` from a tunnel, or `Full<Bytes>` in a test.
    pub async fn handle<B>(
        &self,
        session: &GatewaySession,
        request: Request<B>,
    ) -> Response<ProxyBody>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        self.handle_admitted(session, request, self.admit()).await
    }

    /// [`GatewayProxy::handle`] for a request counted by [`GatewayProxy::admit`].
    pub(crate) async fn handle_admitted<B>(
        &self,
        session: &GatewaySession,
        request: Request<B>,
        admitted: InFlightGuard,
    ) -> Response<ProxyBody>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let (parts, body) = request.into_parts();
        let query = parts.uri.query();
        let info = RequestInfo::classify(&parts.method, parts.uri.path(), query);
        let stream = info.stream_kind(query);
        let request_id = self.next_request_id.fetch_add(1, Ordering::Relaxed);
        let tap = RequestTap::new(
            self.audit.clone(),
            self.pipeline.observer.clone(),
            session.session.id.clone(),
            request_id,
            stream,
        )
        .with_in_flight(session.in_flight.enter())
        .with_in_flight(admitted);
        tap.emit(AuditEventKind::RequestStarted(Box::new(started(
            request_id, &parts, &info,
        ))));

        let mut ctx = RequestContext::new(
            ProxySide::Gateway,
            Some(&session.session),
            &info,
            request_id,
        );
        let body = body::boxed(RequestBody::new(body::boxed(body), tap.clone()));
        let discovery = crate::kube::is_discovery_path(parts.uri.path());
        let (response, cut) = match self.forward(session, &mut ctx, parts, body, &tap).await {
            Ok(response) => {
                self.log(&ctx, response.status(), None);
                let cut = match stream {
                    Some(_) => self.stream_cut(session),
                    None => session.deadline.cut(),
                };
                (response, Some(cut))
            }
            Err(error) => {
                tracing::info!(session = %session.session.id, request = request_id,
                    status = error.status().as_u16(), error = %error, "request refused");
                tap.set_error(error.message());
                let response = rescue_for(&error, discovery);
                self.log(&ctx, response.status(), Some(&error));
                (response, None)
            }
        };
        tap.set_status(response.status().as_u16());
        response.map(|b| body::boxed(ResponseBody::new(b, tap, cut).watch(stream)))
    }

    /// Answers a request that arrived on a tunnel the gateway refused (unknown, ended or foreign
    /// session; credential or connector failure): nothing is forwarded or audited under a
    /// session, but the logging phase of every stage sees it, with no session.
    pub(crate) fn refuse_unattached(
        &self,
        refusal: &ProxyError,
        method: &http::Method,
        uri: &http::Uri,
    ) -> Response<ProxyBody> {
        let info = RequestInfo::classify(method, uri.path(), uri.query());
        let request_id = self.next_request_id.fetch_add(1, Ordering::Relaxed);
        let ctx = RequestContext::new(ProxySide::Gateway, None, &info, request_id);
        let response = crate::proxy::rescue(refusal, uri.path());
        self.log(&ctx, response.status(), Some(refusal));
        response
    }

    /// Resolves when the session is cut or the gateway stops: a stream outlives any drain.
    fn stream_cut(&self, session: &GatewaySession) -> SessionCut {
        let (session_cut, stopping) = (session.deadline.cut(), self.stopping.clone());
        Box::pin(async move {
            tokio::select! {
                status = session_cut => status,
                () = stopping.cancelled() => Status::failure(
                    503,
                    "ServiceUnavailable",
                    "the kms-pam gateway is shutting down; run the command again to reconnect",
                ),
            }
        })
    }

    fn log(&self, ctx: &RequestContext<'_>, status: StatusCode, error: Option<&ProxyError>) {
        let outcome = RequestOutcome { status, error };
        self.pipeline.first.on_logging(ctx, &outcome);
        self.pipeline.stages.on_logging(ctx, &outcome);
    }

    async fn forward(
        &self,
        session: &GatewaySession,
        ctx: &mut RequestContext<'_>,
        mut parts: http::request::Parts,
        body: ProxyBody,
        tap: &Arc<RequestTap>,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        headers::check_request_target(&parts.method, &parts.uri)?;
        headers::check_header_size(&parts.headers)?;
        self.pipeline.first.on_request(ctx, &mut parts).await?;
        session.deadline.check()?;
        self.pipeline.stages.on_request(ctx, &mut parts).await?;
        recording_gate::admit_proxy(
            &ctx.info.verb,
            session.recording.unrecorded_streams,
            &session.session.resource,
        )?;
        let upgrade = headers::is_upgrade(&parts.headers);
        let query = upgrade
            .then(|| parts.uri.query().map(str::to_owned))
            .flatten();
        let stream = upgrade
            .then(|| ctx.info.stream_kind(query.as_deref()))
            .flatten();
        if upgrade {
            recording_gate::admit_upgrade(
                &mut parts.headers,
                stream,
                session.recording.unrecorded_streams,
                &session.session.resource,
            )?;
        }
        // What the API server may pick from (the offer as narrowed above).
        let offered = recording_gate::offered_protocols(&parts.headers);
        headers::strip_hop_by_hop(&mut parts.headers, upgrade);
        let impersonated = headers::impersonation(&parts.headers).is_some();
        headers::strip_impersonation(&mut parts.headers);
        headers::inject_bearer(&mut parts.headers, &session.token)
            .map_err(|e| ProxyError::control_plane(e.to_string()))?;
        // The client addressed the local proxy; the upstream client sets the API server's host.
        parts.headers.remove(header::HOST);

        let mut request = Request::from_parts(parts, body);
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
        let mut response = session.upstream.send(request, upgrade).await?;
        if impersonated {
            // kubectl prints a 299 warning on stderr: `--as` did not do what was asked.
            response.headers_mut().append(
                header::WARNING,
                http::HeaderValue::from_static(
                    "299 - \"kms-pam ignored --as/--as-group: this session acts only as its \
                     account's service account\"",
                ),
            );
        }
        let switched = response.status() == StatusCode::SWITCHING_PROTOCOLS;
        if let (Some(client_upgrade), true) = (client_upgrade, switched) {
            let config = self.pipeline.recording.for_policy(&session.recording);
            let details = stream.map(|stream| {
                StreamDetails::from_request(
                    ctx.request_id,
                    stream,
                    query.as_deref(),
                    response.headers(),
                )
            });
            let recordable = details.as_ref().is_some_and(|d| {
                d.recorded && (config.max_bytes > 0 || config.max_input_bytes > 0)
            });
            if session.recording.unrecorded_streams == UnrecordedStreams::Deny {
                // The API server picked what it was not offered: cut before a byte passes.
                recording_gate::check_answer(&offered, response.headers())?;
            }
            if session.recording.unrecorded_streams == UnrecordedStreams::Deny && !recordable {
                let websocket =
                    details.as_ref().and_then(|d| d.protocol.as_deref()) != Some("SPDY/3.1");
                return Err(recording_gate::refusal(
                    stream,
                    websocket,
                    &session.session.resource,
                ));
            }
            let server_upgrade = hyper::upgrade::on(&mut response);
            let (recorder, task) = details
                .and_then(|d| tap.start_recording(d, &config, session.recording.unrecorded_streams))
                .unzip();
            if let Some(task) = task {
                self.splices.spawn(task.run());
            }
            let (tap, cut) = (tap.clone(), self.stream_cut(session));
            self.splices.spawn(async move {
                match tokio::try_join!(client_upgrade, server_upgrade) {
                    Ok((client, server)) => splice(client, server, tap, Some(cut), recorder).await,
                    Err(e) => tap.set_error(format!("upgrade failed: {e}")),
                }
            });
        }
        let (mut response_parts, response_body) = response.into_parts();
        headers::strip_hop_by_hop(&mut response_parts.headers, switched);
        self.pipeline.stages.on_response(ctx, &mut response_parts);
        self.pipeline.first.on_response(ctx, &mut response_parts);
        Ok(Response::from_parts(response_parts, response_body))
    }
}

impl std::fmt::Debug for GatewayProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayProxy")
            .field("pipeline", &self.pipeline)
            .finish_non_exhaustive()
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
        impersonation: headers::impersonation(&parts.headers),
    }
}
