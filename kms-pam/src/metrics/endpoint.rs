//! `/healthz` and `/metrics` over plain HTTP on an operator-chosen address.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use tokio::net::TcpListener;

/// What an endpoint serves: the metrics text for `/metrics`, and whether the process is ready
/// for `/readyz` (e.g. a relay-only gateway holding no tunnel is alive but not ready).
#[derive(Clone)]
pub(crate) struct Exposition {
    /// Encodes the metrics, after copying in any value kept elsewhere.
    pub(crate) scrape: Arc<dyn Fn() -> String + Send + Sync>,
    /// Whether `/readyz` answers 200.
    pub(crate) ready: Arc<dyn Fn() -> bool + Send + Sync>,
}

/// Serves `/healthz`, `/readyz` and `/metrics` until `shutdown` resolves.
pub(crate) async fn serve<F>(
    listener: TcpListener,
    exposition: Exposition,
    shutdown: F,
) -> std::io::Result<()>
where
    F: Future<Output = ()>,
{
    tokio::pin!(shutdown);
    loop {
        let (tcp, _) = tokio::select! {
            accepted = crate::net::conn::accept(&listener, "metrics") => accepted,
            () = &mut shutdown => return Ok(()),
        };
        let exposition = exposition.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let exposition = exposition.clone();
                async move { Ok::<_, Infallible>(answer(&request, &exposition)) }
            });
            let limits = crate::net::conn::HttpLimits::METRICS;
            crate::net::conn::serve_http(tcp, service, limits, std::future::pending()).await;
        });
    }
}

fn answer<B>(request: &Request<B>, exposition: &Exposition) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (request.method(), request.uri().path()) {
        (&Method::GET, "/healthz") => (StatusCode::OK, "text/plain", Bytes::from_static(b"ok\n")),
        (&Method::GET, "/readyz") if (exposition.ready)() => {
            (StatusCode::OK, "text/plain", Bytes::from_static(b"ready\n"))
        }
        (&Method::GET, "/readyz") => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            Bytes::from_static(b"not ready\n"),
        ),
        (&Method::GET, "/metrics") => (
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Bytes::from((exposition.scrape)()),
        ),
        (&Method::GET, _) => (
            StatusCode::NOT_FOUND,
            "text/plain",
            Bytes::from_static(b"not found\n"),
        ),
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            Bytes::from_static(b"method not allowed\n"),
        ),
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}

/// GETs `url` (plain `http://`, a loopback probe: the metrics port, or a KMS listener without
/// TLS) and succeeds when it answers 200 within 5 s: the binaries' `healthcheck` subcommand, for
/// container healthchecks in images without a shell or curl. Not API.
#[doc(hidden)]
pub async fn healthcheck(url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
    if parsed.scheme() != "http" {
        return Err(format!("{url}: healthcheck speaks plain http:// only"));
    }
    let host = parsed.host_str().ok_or(format!("{url}: no host"))?;
    let port = parsed.port_or_known_default().unwrap_or(80);
    let probe = async {
        let tcp = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port))
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        let io = hyper_util::rt::TokioIo::new(tcp);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        tokio::spawn(conn);
        let request = Request::get(parsed.path())
            .header(header::HOST, format!("{host}:{port}"))
            .body(http_body_util::Empty::<Bytes>::new())
            .map_err(|e| format!("{url}: {e}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        match response.status() {
            StatusCode::OK => Ok(()),
            status => Err(format!("{url} answered {status}")),
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), probe)
        .await
        .map_err(|_| format!("{url}: no answer within 5 s"))?
}
