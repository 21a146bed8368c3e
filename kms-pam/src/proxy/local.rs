//! The local side of the engine: what the CLI's loopback proxy does with one kubectl request.
//! Checks and strips the per-session local bearer token (SPEC §2.5), then forwards through the
//! tunnel, passing upgrades through both ways.

use std::sync::Arc;

use http::{header, Request, Response, StatusCode};
use hyper::body::Incoming;

use super::body::{self, ProxyBody};
use super::error::{rescue_for, ProxyError};
use super::headers;
use super::tunnel_client::TunnelClient;
use super::upstream::error_chain;
use crate::secret::Secret;
use crate::transport::GatewayTransport;

/// Forwards kubectl's requests to the gateway for one session.
pub struct LocalProxy {
    local_token: Secret,
    tunnel: TunnelClient,
}

impl LocalProxy {
    /// A proxy accepting requests that carry `local_token`, forwarding through `transport`.
    pub fn new(local_token: Secret, transport: Arc<dyn GatewayTransport>) -> Self {
        Self {
            local_token,
            tunnel: TunnelClient::new(transport),
        }
    }

    /// Handles one request; never fails: errors are answered with a `Status`.
    pub async fn handle(&self, request: Request<Incoming>) -> Response<ProxyBody> {
        let discovery = crate::kube::is_discovery_path(request.uri().path());
        match self.forward(request).await {
            Ok(response) => response,
            Err(error) => {
                tracing::info!(status = error.status().as_u16(), error = %error, "request refused");
                rescue_for(&error, discovery)
            }
        }
    }

    async fn forward(&self, request: Request<Incoming>) -> Result<Response<ProxyBody>, ProxyError> {
        let (mut parts, body) = request.into_parts();
        let authorized = headers::bearer_token(&parts.headers)
            .is_some_and(|token| self.local_token.constant_time_eq(token));
        if !authorized {
            return Err(ProxyError::unauthenticated(
                "this kms-pam local proxy only accepts requests made with its session kubeconfig",
            ));
        }
        parts.headers.remove(header::AUTHORIZATION);
        let upgrade = headers::is_upgrade(&parts.headers);
        headers::strip_hop_by_hop(&mut parts.headers, upgrade);

        if !upgrade {
            let request = Request::from_parts(parts, body::boxed(body));
            let response = self.tunnel.send(request).await?;
            return Ok(strip_response(response, false));
        }
        let mut request = Request::from_parts(parts, body::boxed(body));
        let client_upgrade = hyper::upgrade::on(&mut request);
        let mut response = self.tunnel.send_upgrade(request).await?;
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            let tunnel_upgrade = hyper::upgrade::on(&mut response);
            tokio::spawn(async move {
                match tokio::try_join!(client_upgrade, tunnel_upgrade) {
                    Ok((client, tunnel)) => {
                        let mut client = hyper_util::rt::TokioIo::new(client);
                        let mut tunnel = hyper_util::rt::TokioIo::new(tunnel);
                        if let Err(e) =
                            tokio::io::copy_bidirectional(&mut client, &mut tunnel).await
                        {
                            tracing::debug!(error = %e, "upgraded stream ended");
                        }
                    }
                    Err(e) => tracing::info!(error = %error_chain(&e), "upgrade failed"),
                }
            });
            return Ok(strip_response(response, true));
        }
        Ok(strip_response(response, false))
    }
}

fn strip_response(response: Response<Incoming>, upgrade: bool) -> Response<ProxyBody> {
    let (mut parts, body) = response.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers, upgrade);
    Response::from_parts(parts, body::boxed(body))
}
