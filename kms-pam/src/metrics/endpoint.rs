//! `/healthz` and `/metrics` over plain HTTP on an operator-chosen address.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use tokio::net::TcpListener;

use super::GatewayMetrics;

/// Called before each scrape to copy values kept elsewhere into the metrics.
pub(crate) type Refresh = Arc<dyn Fn(&GatewayMetrics) + Send + Sync>;

/// Serves the endpoint until `shutdown` resolves.
pub(crate) async fn serve<F>(
    listener: TcpListener,
    metrics: Arc<GatewayMetrics>,
    refresh: Option<Refresh>,
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
        let (metrics, refresh) = (metrics.clone(), refresh.clone());
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let (metrics, refresh) = (metrics.clone(), refresh.clone());
                async move { Ok::<_, Infallible>(answer(&request, &metrics, refresh.as_ref())) }
            });
            let limits = crate::net::conn::HttpLimits::METRICS;
            crate::net::conn::serve_http(tcp, service, limits, std::future::pending()).await;
        });
    }
}

fn answer<B>(
    request: &Request<B>,
    metrics: &GatewayMetrics,
    refresh: Option<&Refresh>,
) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (request.method(), request.uri().path()) {
        (&Method::GET, "/healthz") => (StatusCode::OK, "text/plain", Bytes::from_static(b"ok\n")),
        (&Method::GET, "/metrics") => {
            if let Some(refresh) = refresh {
                refresh(metrics);
            }
            (
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                Bytes::from(metrics.encode()),
            )
        }
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
