//! The vocabulary of a classified request: its verb, and the kind of stream it opens.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a request does, as a person reading a kubectl audit trail would say it.
///
/// Resource requests use the Kubernetes authorization verbs (`get`, `list`, `watch`, ...),
/// except that the streaming subresources a kubectl user thinks of as commands (`exec`, `attach`,
/// `portforward`, `log`, `proxy`) become verbs of their own. Non-resource requests (`/healthz`,
/// discovery, `/openapi/v3`) use the lowercase HTTP method, as the API server does; that is why
/// `Post`, `Put`, `Head` and `Options` exist next to `Create` and `Update`.
///
/// Serialized as the lowercase string from [`Verb::as_str`]; any other string deserializes to
/// [`Verb::Other`], so events written by a newer version still load.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Verb {
    /// Read one named object (`GET` or `HEAD` with a name).
    Get,
    /// Read a collection (`GET` without a name and without `watch`).
    List,
    /// Stream changes (`?watch=true`, or the legacy `/watch/` prefix).
    Watch,
    /// `POST` to a resource.
    Create,
    /// `PUT` to a resource.
    Update,
    /// `PATCH`, on a resource or not.
    Patch,
    /// `DELETE` of one object, or of a non-resource path.
    Delete,
    /// `DELETE` on a collection.
    DeleteCollection,
    /// `kubectl exec` and `kubectl cp`: the `exec` subresource.
    Exec,
    /// `kubectl attach`: the `attach` subresource.
    Attach,
    /// `kubectl port-forward`: the `portforward` subresource.
    PortForward,
    /// `kubectl logs`: the `log` subresource.
    Log,
    /// The `proxy` subresource, or the legacy `/proxy/` prefix.
    Proxy,
    /// Another interactive subresource of an aggregated API (see `CONNECT_SUBRESOURCES`).
    Connect,
    /// `POST` to a non-resource path.
    Post,
    /// `PUT` to a non-resource path.
    Put,
    /// `HEAD` on a non-resource path.
    Head,
    /// `OPTIONS`, on a resource or not.
    Options,
    /// Any other method, lowercased (`trace`, `connect`, extension methods), or an unknown verb
    /// read back from storage.
    Other(String),
}

impl Verb {
    /// The lowercase name used in audit events and serialization.
    pub fn as_str(&self) -> &str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
            Verb::Exec => "exec",
            Verb::Attach => "attach",
            Verb::PortForward => "portforward",
            Verb::Log => "log",
            Verb::Proxy => "proxy",
            Verb::Connect => "connect",
            Verb::Post => "post",
            Verb::Put => "put",
            Verb::Head => "head",
            Verb::Options => "options",
            Verb::Other(other) => other,
        }
    }

    /// The verb of a non-resource request: the lowercase HTTP method.
    pub fn from_method(method: &http::Method) -> Verb {
        match *method {
            http::Method::GET => Verb::Get,
            http::Method::POST => Verb::Post,
            http::Method::PUT => Verb::Put,
            http::Method::PATCH => Verb::Patch,
            http::Method::DELETE => Verb::Delete,
            http::Method::HEAD => Verb::Head,
            http::Method::OPTIONS => Verb::Options,
            _ => Verb::Other(method.as_str().to_ascii_lowercase()),
        }
    }

    /// The verb of a resource request before the collection and subresource rules apply.
    ///
    /// The API server leaves the verb empty for methods it does not map; an empty verb tells an
    /// auditor nothing, so those keep their lowercase method instead.
    pub(super) fn from_resource_method(method: &http::Method) -> Verb {
        match *method {
            http::Method::GET | http::Method::HEAD => Verb::Get,
            http::Method::POST => Verb::Create,
            http::Method::PUT => Verb::Update,
            http::Method::PATCH => Verb::Patch,
            http::Method::DELETE => Verb::Delete,
            _ => Verb::from_method(method),
        }
    }
}

impl From<&str> for Verb {
    /// Reads a verb back from its [`Verb::as_str`] form; unknown strings become [`Verb::Other`].
    fn from(name: &str) -> Verb {
        match name {
            "get" => Verb::Get,
            "list" => Verb::List,
            "watch" => Verb::Watch,
            "create" => Verb::Create,
            "update" => Verb::Update,
            "patch" => Verb::Patch,
            "delete" => Verb::Delete,
            "deletecollection" => Verb::DeleteCollection,
            "exec" => Verb::Exec,
            "attach" => Verb::Attach,
            "portforward" => Verb::PortForward,
            "log" => Verb::Log,
            "proxy" => Verb::Proxy,
            "connect" => Verb::Connect,
            "post" => Verb::Post,
            "put" => Verb::Put,
            "head" => Verb::Head,
            "options" => Verb::Options,
            other => Verb::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Verb {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Verb {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Verb, D::Error> {
        let name = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Ok(Verb::from(name.as_ref()))
    }
}

/// The kind of long-lived stream a request opens; the session deadline must cut these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum StreamKind {
    /// A watch: chunked events until either side closes.
    Watch,
    /// `kubectl logs -f`: an endless chunked body.
    LogFollow,
    /// An `exec` upgrade (WebSocket or SPDY).
    Exec,
    /// An `attach` upgrade.
    Attach,
    /// A `portforward` upgrade.
    PortForward,
    /// A proxied request to a pod, service or node, which may upgrade or stream.
    Proxy,
    /// Another interactive subresource ([`Verb::Connect`]).
    Connect,
}

impl StreamKind {
    /// The `snake_case` name used in metrics labels and serialization.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamKind::Watch => "watch",
            StreamKind::LogFollow => "log_follow",
            StreamKind::Exec => "exec",
            StreamKind::Attach => "attach",
            StreamKind::PortForward => "port_forward",
            StreamKind::Proxy => "proxy",
            StreamKind::Connect => "connect",
        }
    }
}

impl fmt::Display for StreamKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
