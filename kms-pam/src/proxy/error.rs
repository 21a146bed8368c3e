//! The proxy path's errors, and the one edge layer that turns them into HTTP answers.

use http::{header, HeaderValue, Response, StatusCode};

use super::body::{self, ProxyBody};
use crate::kube::Status;

/// Where an error came from: decides the status code and who can fix it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorSource {
    /// The client's request (missing or wrong local token, malformed request).
    Client,
    /// The session (expired, terminated, unknown, bound elsewhere).
    Session,
    /// A policy or hook refused the request.
    Policy,
    /// The tunnel between local proxy and gateway.
    Tunnel,
    /// The Kubernetes API server.
    Upstream,
    /// KMS, or another store the gateway depends on.
    ControlPlane,
}

/// An error on the proxy path. Its message is shown to the kubectl user, so it must say what
/// happened and what to do, and must never contain a secret.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ProxyError {
    origin: ErrorSource,
    status: StatusCode,
    message: String,
}

impl ProxyError {
    /// An error with an explicit source and status.
    pub fn new(source: ErrorSource, status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            origin: source,
            status,
            message: message.into(),
        }
    }

    /// 401 from the client side (no or wrong local token).
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(ErrorSource::Client, StatusCode::UNAUTHORIZED, message)
    }

    /// 400: the request cannot be forwarded as it is.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorSource::Client, StatusCode::BAD_REQUEST, message)
    }

    /// 405: a method the path never forwards.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(ErrorSource::Client, StatusCode::METHOD_NOT_ALLOWED, message)
    }

    /// 401: the session no longer grants access.
    pub fn session(message: impl Into<String>) -> Self {
        Self::new(ErrorSource::Session, StatusCode::UNAUTHORIZED, message)
    }

    /// 403: a policy or hook refuses the request.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorSource::Policy, StatusCode::FORBIDDEN, message)
    }

    /// 502: the tunnel to the gateway failed.
    pub fn tunnel(message: impl Into<String>) -> Self {
        Self::new(ErrorSource::Tunnel, StatusCode::BAD_GATEWAY, message)
    }

    /// 502: the API server could not be reached or broke the connection.
    pub fn upstream(message: impl Into<String>) -> Self {
        Self::new(ErrorSource::Upstream, StatusCode::BAD_GATEWAY, message)
    }

    /// 504: the API server did not answer in time.
    pub fn upstream_timeout(message: impl Into<String>) -> Self {
        Self::new(ErrorSource::Upstream, StatusCode::GATEWAY_TIMEOUT, message)
    }

    /// 502: KMS (or another store) could not be reached.
    pub fn control_plane(message: impl Into<String>) -> Self {
        Self::new(ErrorSource::ControlPlane, StatusCode::BAD_GATEWAY, message)
    }

    /// Where the error came from.
    pub fn source_kind(&self) -> ErrorSource {
        self.origin
    }

    /// The HTTP status it becomes.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message shown to the user.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The Kubernetes `Status` it becomes.
    pub fn to_status(&self) -> Status {
        Status::failure(self.status.as_u16(), reason_for(self.status), &self.message)
    }
}

fn reason_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "BadRequest",
        StatusCode::UNAUTHORIZED => "Unauthorized",
        StatusCode::FORBIDDEN => "Forbidden",
        StatusCode::NOT_FOUND => "NotFound",
        StatusCode::METHOD_NOT_ALLOWED => "MethodNotAllowed",
        StatusCode::GATEWAY_TIMEOUT => "Timeout",
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::BAD_GATEWAY => "ServiceUnavailable",
        _ => "InternalError",
    }
}

/// The edge: every error of the proxy path becomes a `Status` response here, and nowhere else.
///
/// kubectl's discovery requests (`/api`, `/apis`, `/apis/GROUP/VERSION`, ...) read error bodies as
/// plain text and show them only then (and only for 5xx codes); everything else decodes a JSON
/// `Status`. So discovery paths get the message as `text/plain`, other paths the `Status`.
pub fn rescue(error: &ProxyError, path: &str) -> Response<ProxyBody> {
    rescue_for(error, crate::kube::is_discovery_path(path))
}

/// [`rescue`] for callers that classified the path already (and gave the request away).
pub fn rescue_for(error: &ProxyError, discovery: bool) -> Response<ProxyBody> {
    let (body, content_type) = if discovery {
        let mut text = error.message.clone();
        text.push('\n');
        (bytes::Bytes::from(text), "text/plain; charset=utf-8")
    } else {
        (error.to_status().to_json(), "application/json")
    };
    let mut response = Response::new(body::full(body));
    *response.status_mut() = error.status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn rescue_makes_a_status_kubectl_prints() {
        let resp = rescue(
            &ProxyError::session("kms-pam session abc expired"),
            "/api/v1/pods",
        );
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["kind"], "Status");
        assert_eq!(v["reason"], "Unauthorized");
        assert_eq!(v["message"], "kms-pam session abc expired");
    }

    #[tokio::test]
    async fn discovery_errors_are_plain_text() {
        let resp = rescue(&ProxyError::upstream("API server down"), "/apis");
        assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(
            resp.headers()[header::CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"API server down\n");
    }

    #[test]
    fn statuses_by_source() {
        assert_eq!(ProxyError::forbidden("x").status(), StatusCode::FORBIDDEN);
        assert_eq!(ProxyError::upstream("x").status(), StatusCode::BAD_GATEWAY);
        assert_eq!(
            ProxyError::upstream_timeout("x").to_status().reason,
            "Timeout"
        );
        assert_eq!(ProxyError::tunnel("x").source_kind(), ErrorSource::Tunnel);
    }
}
