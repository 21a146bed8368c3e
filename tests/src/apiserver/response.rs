//! Response bodies and the one place where errors become Kubernetes `Status` answers.

use std::convert::Infallible;

use bytes::Bytes;
use futures_util::stream::{self, Stream, StreamExt};
use http::{header, Response, StatusCode};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full, StreamBody};
use hyper::body::Frame;
use serde_json::{json, Value};

/// The body type of every response the double sends.
pub(crate) type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Large payloads go out in pieces of this size, like a server streaming from its cache.
const CHUNK: usize = 64 * 1024;

/// Why a request failed; rendered as a `Status` object by [`ApiError::into_response`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum ApiError {
    #[error("Unauthorized")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("the server could not find the requested resource")]
    NoSuchPath,
    #[error("{} \"{name}\" not found", qualified(resource, group))]
    NotFound {
        resource: String,
        group: String,
        name: String,
    },
    #[error("{} \"{name}\" already exists", qualified(resource, group))]
    AlreadyExists {
        resource: String,
        group: String,
        name: String,
    },
    #[error("Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again", qualified(resource, group))]
    Conflict {
        resource: String,
        group: String,
        name: String,
    },
    #[error("{kind} \"{name}\" is invalid: {field}: {message}")]
    Invalid {
        kind: String,
        name: String,
        field: String,
        message: String,
    },
    #[error("{0}")]
    BadRequest(String),
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    #[error("only the following media types are accepted: application/json, application/vnd.kubernetes.protobuf")]
    NotAcceptable,
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("the request body is too large")]
    TooLarge,
}

impl ApiError {
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest(message.into())
    }

    fn code(&self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NoSuchPath | Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::AlreadyExists { .. } | Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::NotAcceptable => StatusCode::NOT_ACCEPTABLE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Self::Unauthorized => "Unauthorized",
            Self::Forbidden(_) => "Forbidden",
            Self::NoSuchPath | Self::NotFound { .. } => "NotFound",
            Self::AlreadyExists { .. } => "AlreadyExists",
            Self::Conflict { .. } => "Conflict",
            Self::Invalid { .. } => "Invalid",
            Self::BadRequest(_) => "BadRequest",
            Self::MethodNotAllowed => "MethodNotAllowed",
            Self::NotAcceptable => "NotAcceptable",
            Self::UnsupportedMediaType(_) => "UnsupportedMediaType",
            Self::TooLarge => "RequestEntityTooLarge",
        }
    }

    fn details(&self) -> Option<Value> {
        match self {
            Self::NotFound {
                resource,
                group,
                name,
            }
            | Self::AlreadyExists {
                resource,
                group,
                name,
            }
            | Self::Conflict {
                resource,
                group,
                name,
            } => {
                let mut details = json!({"name": name, "kind": resource});
                if !group.is_empty() {
                    details["group"] = json!(group);
                }
                Some(details)
            }
            Self::Invalid {
                kind,
                name,
                field,
                message,
            } => Some(json!({"name": name, "kind": kind, "causes": [
                {"reason": "FieldValueInvalid", "message": message, "field": field}
            ]})),
            Self::NoSuchPath | Self::MethodNotAllowed => Some(json!({})),
            _ => None,
        }
    }

    /// The `Status` object a real API server would send for this error.
    pub(crate) fn status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
        });
        if let Some(details) = self.details() {
            status["details"] = details;
        }
        status["code"] = json!(self.code().as_u16());
        status
    }

    pub(crate) fn into_response(self) -> Response<Body> {
        json_response(self.code(), &self.status())
    }
}

/// `pods` for the core group, `deployments.apps` otherwise, as in the real messages.
fn qualified(resource: &str, group: &str) -> String {
    if group.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource}.{group}")
    }
}

pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

/// Streams `parts` in bounded chunks without copying them into one buffer.
pub(crate) fn chunked(parts: Vec<Bytes>) -> Body {
    let pieces = stream::iter(parts).flat_map(|part| stream::iter(split(part)));
    StreamBody::new(pieces.map(|piece| Ok(Frame::data(piece)))).boxed_unsync()
}

/// A body fed by `stream` for as long as the client keeps reading.
pub(crate) fn streaming(stream: impl Stream<Item = Bytes> + Send + 'static) -> Body {
    StreamBody::new(stream.map(|piece| Ok(Frame::data(piece)))).boxed_unsync()
}

fn split(part: Bytes) -> Vec<Bytes> {
    (0..part.len())
        .step_by(CHUNK)
        .map(|start| part.slice(start..(start + CHUNK).min(part.len())))
        .collect()
}

pub(crate) fn json_response(code: StatusCode, value: &Value) -> Response<Body> {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    response(code, "application/json", full(bytes))
}

pub(crate) fn response(code: StatusCode, content_type: &str, body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = code;
    if let Ok(value) = header::HeaderValue::from_str(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}

/// The `Status` a successful delete answers with.
pub(crate) fn delete_success(resource: &str, group: &str, name: &str, uid: &str) -> Value {
    let mut details = json!({"name": name, "kind": resource, "uid": uid});
    if !group.is_empty() {
        details["group"] = json!(group);
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unauthorized_matches_the_real_server() {
        let status = ApiError::Unauthorized.status();
        assert_eq!(
            status,
            json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
                   "message":"Unauthorized","reason":"Unauthorized","code":401})
        );
    }

    #[test]
    fn not_found_names_group_and_resource() {
        let error = ApiError::NotFound {
            resource: "deployments".into(),
            group: "apps".into(),
            name: "web".into(),
        };
        let status = error.status();
        assert_eq!(status["message"], "deployments.apps \"web\" not found");
        assert_eq!(status["details"]["group"], "apps");
        assert_eq!(status["details"]["kind"], "deployments");
        assert_eq!(status["code"], 404);
    }

    #[test]
    fn split_keeps_every_byte() {
        let part = Bytes::from(vec![7u8; CHUNK * 2 + 5]);
        let pieces = split(part);
        assert_eq!(pieces.len(), 3);
        assert_eq!(pieces.iter().map(Bytes::len).sum::<usize>(), CHUNK * 2 + 5);
    }
}
