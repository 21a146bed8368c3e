//! The local side of the engine: what the CLI's loopback proxy does with one kubectl request.
//! Checks and strips the per-session local bearer token (security invariant 5, docs/security.md), then forwards through the
//! tunnel, passing upgrades through both ways.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};

use super::body::{self, BoxError, ProxyBody};
use super::error::{rescue_for, ProxyError};
use super::headers;
use super::hooks::{ProxyHooks, ProxySide, RequestContext, RequestOutcome, Stages};
use super::tunnel_client::TunnelClient;
use super::upstream::error_chain;
use crate::kube::RequestInfo;
use crate::secret::Secret;
use crate::transport::GatewayTransport;

/// Forwards kubectl's requests to the gateway for one session.
pub struct LocalProxy {
    local_token: Secret,
    tunnel: TunnelClient,
    stages: Stages,
    next_request_id: AtomicU64,
}

impl LocalProxy {
    /// A proxy accepting requests that carry `local_token`, forwarding through `transport`.
    pub fn new(local_token: Secret, transport: Arc<dyn GatewayTransport>) -> Self {
        Self {
            local_token,
            tunnel: TunnelClient::new(transport),
            stages: Stages::default(),
            next_request_id: AtomicU64::new(1),
        }
    }

    /// Adds a stage run after the local-token check, before the request leaves this machine
    /// (after stages added before it). A refusal is answered here; nothing reaches the gateway.
    pub fn with_stage(mut self, stage: Arc<dyn ProxyHooks>) -> Self {
        self.stages.push(stage);
        self
    }

    /// Handles one request; never fails: errors are answered with a `Status`. Any body type
    /// will do: hyper's `Incoming` from kubectl's connection, or `Full<Bytes>` in a test.
    pub async fn handle<B>(&self, request: Request<B>) -> Response<ProxyBody>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let discovery = crate::kube::is_discovery_path(request.uri().path());
        let (mut parts, body) = request.into_parts();
        let checked = self
            .authorize(&mut parts)
            .and_then(|()| headers::check_request_target(&parts.method, &parts.uri));
        if self.stages.is_empty() {
            if let Err(error) = checked {
                return self.refuse(&error, discovery);
            }
            return match self.forward(parts, body::boxed(body), None).await {
                Ok(response) => response,
                Err(error) => self.refuse(&error, discovery),
            };
        }
        let info = RequestInfo::classify(&parts.method, parts.uri.path(), parts.uri.query());
        let request_id = self.next_request_id.fetch_add(1, Ordering::Relaxed);
        let mut ctx = RequestContext::new(ProxySide::Local, None, &info, request_id);
        // A request refused by the token or target check reaches no stage's `on_request`, but
        // every stage's `on_logging` sees it.
        let forwarded = match checked {
            Err(error) => Err(error),
            Ok(()) => match self.stages.on_request(&mut ctx, &mut parts).await {
                Ok(()) => self.forward(parts, body::boxed(body), Some(&mut ctx)).await,
                Err(error) => Err(error),
            },
        };
        let (response, error) = match forwarded {
            Ok(response) => (response, None),
            Err(error) => (self.refuse(&error, discovery), Some(error)),
        };
        let outcome = RequestOutcome {
            status: response.status(),
            error: error.as_ref(),
        };
        self.stages.on_logging(&ctx, &outcome);
        response
    }

    fn refuse(&self, error: &ProxyError, discovery: bool) -> Response<ProxyBody> {
        tracing::info!(status = error.status().as_u16(), error = %error, "request refused");
        rescue_for(error, discovery)
    }

    fn authorize(&self, parts: &mut http::request::Parts) -> Result<(), ProxyError> {
        let authorized = headers::bearer_token(&parts.headers)
            .is_some_and(|token| self.local_token.constant_time_eq(token));
        if !authorized {
            return Err(ProxyError::unauthenticated(
                "this kms-pam local proxy only accepts requests made with its session kubeconfig",
            ));
        }
        parts.headers.remove(header::AUTHORIZATION);
        Ok(())
    }

    async fn forward(
        &self,
        mut parts: http::request::Parts,
        body: ProxyBody,
        ctx: Option<&mut RequestContext<'_>>,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let upgrade = headers::is_upgrade(&parts.headers);
        headers::strip_hop_by_hop(&mut parts.headers, upgrade);

        let mut response = if !upgrade {
            let request = Request::from_parts(parts, body);
            strip_response(self.tunnel.send(request).await?, false)
        } else {
            let mut request = Request::from_parts(parts, body);
            let client_upgrade = hyper::upgrade::on(&mut request);
            let mut response = self.tunnel.send_upgrade(request).await?;
            let switched = response.status() == StatusCode::SWITCHING_PROTOCOLS;
            if switched {
                let tunnel_upgrade = hyper::upgrade::on(&mut response);
                tokio::spawn(splice_upgrade(client_upgrade, tunnel_upgrade));
            }
            strip_response(response, switched)
        };
        if let Some(ctx) = ctx {
            let (mut head, body) = response.into_parts();
            self.stages.on_response(ctx, &mut head);
            response = Response::from_parts(head, body);
        }
        Ok(response)
    }
}

async fn splice_upgrade(client: hyper::upgrade::OnUpgrade, tunnel: hyper::upgrade::OnUpgrade) {
    match tokio::try_join!(client, tunnel) {
        Ok((client, tunnel)) => {
            let mut client = hyper_util::rt::TokioIo::new(client);
            let mut tunnel = hyper_util::rt::TokioIo::new(tunnel);
            if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut tunnel).await {
                tracing::debug!(error = %e, "upgraded stream ended");
            }
        }
        Err(e) => tracing::info!(error = %error_chain(&e), "upgrade failed"),
    }
}

impl std::fmt::Debug for LocalProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalProxy")
            .field("stages", &self.stages)
            .finish_non_exhaustive()
    }
}

fn strip_response(response: Response<hyper::body::Incoming>, upgrade: bool) -> Response<ProxyBody> {
    let (mut parts, body) = response.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers, upgrade);
    Response::from_parts(parts, body::boxed(body))
}
