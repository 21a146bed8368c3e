//! The connection to the Kubernetes API server: pooled clients per upstream, one for ordinary
//! requests (HTTP/2 when the server offers it) and one for upgrades (HTTP/1.1 only).

use std::time::Duration;

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri, Version};
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::body::ProxyBody;
use super::error::ProxyError;
use crate::credential::Upstream;
use crate::tls::{explain_upstream_tls_error, upstream_client_config, UpstreamAlpn, UpstreamTls};

/// How long to wait for a TCP connection to the API server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle pooled connections are closed after this.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

type HttpsClient = Client<HttpsConnector<HttpConnector>, ProxyBody>;

/// Pooled clients for one API server.
pub struct UpstreamClient {
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

impl UpstreamClient {
    /// Builds the clients; fails when the URL or the TLS material is unusable.
    pub fn new(upstream: &Upstream) -> Result<Self, ProxyError> {
        Self::for_resource(upstream.url.as_str(), upstream)
    }

    /// [`UpstreamClient::new`] for the PAM resource `resource`, which TLS failures name.
    pub fn for_resource(resource: &str, upstream: &Upstream) -> Result<Self, ProxyError> {
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
    pub fn uri_for(&self, path_and_query: Option<&PathAndQuery>) -> Result<Uri, ProxyError> {
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
    pub async fn send(
        &self,
        mut request: Request<ProxyBody>,
        upgrade: bool,
    ) -> Result<Response<Incoming>, ProxyError> {
        // The pool picks the version per connection (ALPN); a request must not insist on one.
        *request.version_mut() = Version::HTTP_11;
        let client = if upgrade {
            &self.upgrades
        } else {
            &self.requests
        };
        client.request(request).await.map_err(|e| {
            if let Some(message) = explain_upstream_tls_error(&e, &self.resource, &self.tls) {
                return ProxyError::upstream(message);
            }
            let detail = error_chain(&e);
            if detail.contains("timed out") {
                ProxyError::upstream_timeout(format!(
                    "the Kubernetes API server at {} did not answer in time: {detail}",
                    self.authority
                ))
            } else {
                ProxyError::upstream(format!(
                    "the Kubernetes API server at {} is unreachable: {detail}",
                    self.authority
                ))
            }
        })
    }
}

fn client(upstream: &Upstream, alpn: UpstreamAlpn) -> Result<HttpsClient, ProxyError> {
    let tls = upstream_client_config(&upstream.tls, alpn).map_err(|e| {
        ProxyError::upstream(format!(
            "TLS settings of {} are unusable: {e}",
            upstream.url
        ))
    })?;
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    // hyper-rustls sets ALPN itself from the HTTP versions enabled below, and refuses a config
    // that already has some.
    let mut tls = (*tls).clone();
    tls.alpn_protocols.clear();
    let builder = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only();
    let connector = match alpn {
        UpstreamAlpn::Http1Only => builder.enable_http1().wrap_connector(http),
        _ => builder.enable_http1().enable_http2().wrap_connector(http),
    };
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_max_idle_per_host(usize::MAX)
        .http2_initial_stream_window_size(super::http2::STREAM_WINDOW)
        .http2_initial_connection_window_size(super::http2::CONNECTION_WINDOW)
        .build(connector))
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
