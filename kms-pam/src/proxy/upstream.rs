//! The connection to the Kubernetes API server, as two traits an embedder can replace
//! ([`UpstreamConnector`] picks a client per API server when a session is admitted,
//! [`UpstreamClient`] sends its requests), and the default: pooled clients per upstream, one for
//! ordinary requests (HTTP/2 when the server offers it) and one for upgrades (HTTP/1.1 only).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri, Version};
use hyper::body::Incoming;

use super::body::{self, ProxyBody};
use super::error::ProxyError;
use crate::credential::Upstream;
use crate::net::http_client::{https_client, ClientSettings, ConnectionFailure};
use crate::tls::{explain_upstream_tls_error, UpstreamAlpn, UpstreamTls};

/// Sends a session's requests to its API server.
///
/// The request arrives with its path and query only (origin form, as the client sent it), the
/// `Authorization` header already the account's and `Host` removed; the client addresses the API
/// server itself. For an upgrade (`upgrade == true`: exec, attach, port-forward) it must keep
/// hyper's upgrade machinery in the response's extensions, so a `101` can be spliced.
///
/// Failure semantics: an `Err` becomes the client's answer as a `Status` (use
/// [`ProxyError::upstream`] / [`ProxyError::upstream_timeout`]); nothing is retried. The
/// default client answers every failure to reach the API server alike and logs the cause.
#[async_trait]
pub trait UpstreamClient: Send + Sync + 'static {
    /// Sends one request and returns the API server's response head with its streaming body.
    async fn send(
        &self,
        request: Request<ProxyBody>,
        upgrade: bool,
    ) -> Result<Response<ProxyBody>, ProxyError>;
}

/// Chooses the [`UpstreamClient`] for an API server. Called once per admitted session, so a
/// connector caches what it builds (pools, TLS configurations) per upstream.
///
/// Failure semantics: an `Err` refuses the session's tunnel with that error as a `Status`.
pub trait UpstreamConnector: Send + Sync + 'static {
    /// The client for `upstream`, the URL and TLS settings of the PAM resource named `resource`
    /// (which error messages name).
    fn connect(
        &self,
        resource: &str,
        upstream: &Upstream,
    ) -> Result<Arc<dyn UpstreamClient>, ProxyError>;
}

/// The default connector: one pool of HTTPS connections per distinct upstream (URL and TLS
/// settings), shared by every session on it.
#[derive(Default)]
pub struct PooledConnector {
    clients: Mutex<HashMap<String, Arc<PooledClient>>>,
}

impl PooledConnector {
    /// A connector with no pools yet.
    pub fn new() -> Self {
        Self::default()
    }
}

impl fmt::Debug for PooledConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pools = self.clients.lock().map_or(0, |c| c.len());
        f.debug_struct("PooledConnector")
            .field("pools", &pools)
            .finish()
    }
}

impl UpstreamConnector for PooledConnector {
    fn connect(
        &self,
        resource: &str,
        upstream: &Upstream,
    ) -> Result<Arc<dyn UpstreamClient>, ProxyError> {
        // Keyed by resource too: its name is in the pool's error messages.
        let settings = serde_json::to_string(upstream).unwrap_or_else(|_| upstream.url.to_string());
        let key = format!("{resource}\n{settings}");
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(client) = clients.get(&key) {
            return Ok(client.clone());
        }
        let client = Arc::new(PooledClient::for_resource(resource, upstream)?);
        clients.insert(key, client.clone());
        Ok(client)
    }
}

/// Every session on the same client, whatever its upstream: for an in-process API server, a
/// test double, or a client that routes by itself.
impl<C: UpstreamClient> UpstreamConnector for Arc<C> {
    fn connect(
        &self,
        _resource: &str,
        _upstream: &Upstream,
    ) -> Result<Arc<dyn UpstreamClient>, ProxyError> {
        Ok(self.clone())
    }
}

/// How long to wait for a TCP connection to the API server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle pooled connections are closed after this.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

type HttpsClient = crate::net::http_client::HttpsClient<ProxyBody>;

/// Pooled clients for one API server.
pub(crate) struct PooledClient {
    scheme: Scheme,
    authority: Authority,
    /// The URL's path without its trailing slash (`""` or `/prefix`), put in front of every path.
    base_path: String,
    requests: HttpsClient,
    upgrades: HttpsClient,
    /// The resource named in TLS failure messages, and how it verifies the server.
    resource: String,
    tls: UpstreamTls,
}

impl PooledClient {
    /// Builds the clients for the PAM resource `resource` (which TLS failures name); fails when
    /// the URL or the TLS material is unusable.
    pub(crate) fn for_resource(resource: &str, upstream: &Upstream) -> Result<Self, ProxyError> {
        let url = &upstream.url;
        // Never plain HTTP: the account's token would cross the network in cleartext.
        let scheme = match url.scheme() {
            "https" => Scheme::HTTPS,
            other => {
                return Err(ProxyError::upstream(format!(
                    "API server URL {url} has scheme {other:?}; the gateway sends the account's \
                     token only over https://: recreate the resource with an https:// URL"
                )))
            }
        };
        let authority = url[url::Position::BeforeHost..url::Position::AfterPort]
            .parse::<Authority>()
            .map_err(|e| ProxyError::upstream(format!("API server URL {url} is invalid: {e}")))?;
        Ok(Self {
            scheme,
            authority,
            base_path: url.path().trim_end_matches('/').to_owned(),
            requests: client(upstream, UpstreamAlpn::Http2AndHttp1)?,
            upgrades: client(upstream, UpstreamAlpn::Http1Only)?,
            resource: resource.to_owned(),
            tls: upstream.tls.clone(),
        })
    }

    /// The upstream URI for a request path and query.
    pub(crate) fn uri_for(&self, path_and_query: Option<&PathAndQuery>) -> Result<Uri, ProxyError> {
        let pq = path_and_query.map_or("/", PathAndQuery::as_str);
        let joined = if self.base_path.is_empty() {
            PathAndQuery::try_from(pq)
        } else {
            PathAndQuery::try_from(format!("{}{pq}", self.base_path))
        }
        .map_err(|e| ProxyError::bad_request(format!("request path cannot be forwarded: {e}")))?;
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(joined)
            .build()
            .map_err(|e| ProxyError::bad_request(format!("request path cannot be forwarded: {e}")))
    }

    /// Sends a request; `upgrade` selects the HTTP/1.1-only client.
    async fn send_pooled(
        &self,
        mut request: Request<ProxyBody>,
        upgrade: bool,
    ) -> Result<Response<Incoming>, ProxyError> {
        *request.uri_mut() = self.uri_for(request.uri().path_and_query())?;
        // The pool picks the version per connection (ALPN); a request must not insist on one.
        *request.version_mut() = Version::HTTP_11;
        let client = if upgrade {
            &self.upgrades
        } else {
            &self.requests
        };
        client
            .request(request)
            .await
            .map_err(|e| self.unreachable(&e))
    }

    /// One answer for every way the API server could not be reached (refused, timed out, not
    /// TLS, a certificate not trusted, …), so that whoever holds a session cannot map the
    /// gateway's network through it (issue 28 point 6); what happened goes to the gateway's
    /// log under the error id the answer names.
    fn unreachable(&self, e: &hyper_util::client::legacy::Error) -> ProxyError {
        let detail = match explain_upstream_tls_error(e, &self.resource, &self.tls) {
            Some(message) => message,
            None if ConnectionFailure::of(e).0 == ConnectionFailure::Timeout => format!(
                "the Kubernetes API server at {} did not answer in time: {}",
                self.authority,
                error_chain(e)
            ),
            None => format!(
                "the Kubernetes API server at {} is unreachable: {}",
                self.authority,
                error_chain(e)
            ),
        };
        let id = error_id();
        tracing::warn!(error_id = %id, resource = %self.resource, upstream = %self.authority,
            "{detail}");
        ProxyError::upstream(unreachable_message(&id))
    }
}

/// A short random id that ties an answer to its line in the gateway's log.
fn error_id() -> String {
    let mut id = uuid::Uuid::new_v4().simple().to_string();
    id.truncate(12);
    id
}

/// What the client is told when the API server could not be reached, whatever the cause.
pub(crate) fn unreachable_message(error_id: &str) -> String {
    format!(
        "the gateway could not reach the resource's API server; its operator can see why in \
         the gateway's log, error id {error_id}"
    )
}

#[async_trait]
impl UpstreamClient for PooledClient {
    async fn send(
        &self,
        request: Request<ProxyBody>,
        upgrade: bool,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let response = self.send_pooled(request, upgrade).await?;
        Ok(response.map(body::boxed))
    }
}

fn client(upstream: &Upstream, alpn: UpstreamAlpn) -> Result<HttpsClient, ProxyError> {
    let settings = ClientSettings {
        https_only: true,
        tls: Some(upstream.tls.clone()),
        alpn,
        connect_timeout: CONNECT_TIMEOUT,
        pool_idle_timeout: Some(POOL_IDLE_TIMEOUT),
        http2_windows: Some((
            crate::net::http2::STREAM_WINDOW,
            crate::net::http2::CONNECTION_WINDOW,
        )),
    };
    https_client(&settings).map_err(|e| {
        ProxyError::upstream(format!(
            "TLS settings of {} are unusable: {e}",
            upstream.url
        ))
    })
}

/// The error and its causes on one line: hyper's top-level messages alone ("client error
/// (Connect)") do not tell a user what to fix.
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        out.push_str(": ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("client error (Connect)")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn a_timeout_is_found_by_kind_in_the_cause_chain_not_by_its_text() {
        let timed_out = Outer(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "deadline",
        ));
        assert_eq!(
            ConnectionFailure::of(&timed_out).0,
            ConnectionFailure::Timeout
        );
        let refused = Outer(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "timed out (but refused)",
        ));
        assert_ne!(
            ConnectionFailure::of(&refused).0,
            ConnectionFailure::Timeout
        );
    }
}

#[cfg(test)]
#[path = "upstream_reach_tests.rs"]
mod reach_tests;
