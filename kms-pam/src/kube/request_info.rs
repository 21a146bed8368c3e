//! What a request means in Kubernetes terms, for the audit trail and the session deadline.
//!
//! [`RequestInfo::classify`] follows the API server's `RequestInfoFactory`
//! (`k8s.io/apiserver/pkg/endpoints/request/requestinfo.go`) so that the audit trail names the
//! same resource the API server acts on, then renames the streaming subresources to what a
//! kubectl user calls them ([`Verb::Exec`], [`Verb::Log`], ...).
//!
//! Where the API server would accept a path but then refuse it (empty or dot segments, bad
//! percent escapes), the request is classified as non-resource; callers record the raw method
//! and path next to the classification, so such a request still hides nothing.
//! [`RequestInfo::stream_kind`] tells which requests hold a stream open, for the session deadline.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;

mod query;
mod verb;

pub use verb::{StreamKind, Verb};

/// What a request means in Kubernetes terms.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RequestInfo {
    /// Whether the request names an API resource (`/api/v1/...`, `/apis/GROUP/VERSION/...`).
    pub is_resource_request: bool,
    /// The kubectl-view verb; the lowercase HTTP method for non-resource requests.
    pub verb: Verb,
    /// `"api"`, `"apis"`, or `""` for non-resource requests.
    pub api_prefix: String,
    /// The API group; `""` for the core group and for non-resource requests.
    pub api_group: String,
    /// The API version (`v1`, `v1beta1`); `""` for non-resource requests.
    pub api_version: String,
    /// The namespace; for the namespace object itself, its own name, as the API server does.
    pub namespace: Option<String>,
    /// The resource (`pods`), never the kind.
    pub resource: Option<String>,
    /// The subresource (`status`, `scale`, `exec`, `log`, ...).
    pub subresource: Option<String>,
    /// The object name, from the path or from a `metadata.name=` field selector on list/watch.
    pub name: Option<String>,
}

/// The prefix of the named groups: `/apis/GROUP/VERSION/...`.
const GROUPED_PREFIX: &str = "apis";
/// The prefix of the core group, which has no group segment.
const CORE_PREFIX: &str = "api";
/// Segments after the namespace name that are subresources of the namespace object, not
/// resources inside it.
const NAMESPACE_SUBRESOURCES: [&str; 2] = ["status", "finalize"];
/// Interactive subresources of aggregated APIs (KubeVirt's consoles) that are neither exec,
/// attach, port-forward nor proxy but hold a session open just the same.
const CONNECT_SUBRESOURCES: [&str; 3] = ["console", "vnc", "usbredir"];
/// The most segments the rules look at:
/// `apis/GROUP/VERSION/watch/namespaces/NS/RESOURCE/NAME/SUBRESOURCE`.
const MAX_SEGMENTS: usize = 9;

/// The legacy verb prefixes: `/api/v1/watch/...` and `/api/v1/proxy/...`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SpecialVerb {
    Watch,
    Proxy,
}

impl RequestInfo {
    /// Classifies a request from its method, its raw (still percent-encoded) path and its raw
    /// query string.
    ///
    /// Never fails and never panics: odd or malformed paths become non-resource requests.
    #[must_use]
    pub fn classify(method: &http::Method, path: &str, query: Option<&str>) -> RequestInfo {
        let Some(decoded) = decode_path(path) else {
            return RequestInfo::non_resource(method);
        };
        let mut buffer = [""; MAX_SEGMENTS];
        let segments = split_path(&decoded, &mut buffer);
        classify_resource(method, segments, query)
            .unwrap_or_else(|| RequestInfo::non_resource(method))
    }

    /// The long-lived stream this request opens, if any. `query` is the request's raw query
    /// string, needed to tell `kubectl logs -f` from a one-shot `kubectl logs`.
    #[must_use]
    pub fn stream_kind(&self, query: Option<&str>) -> Option<StreamKind> {
        match self.verb {
            Verb::Watch => Some(StreamKind::Watch),
            Verb::Exec => Some(StreamKind::Exec),
            Verb::Attach => Some(StreamKind::Attach),
            Verb::PortForward => Some(StreamKind::PortForward),
            Verb::Proxy => Some(StreamKind::Proxy),
            Verb::Connect => Some(StreamKind::Connect),
            Verb::Log => {
                let [follow] = query::first_values(query, ["follow"]);
                query::is_true(follow.as_deref()).then_some(StreamKind::LogFollow)
            }
            _ => None,
        }
    }

    fn non_resource(method: &http::Method) -> RequestInfo {
        RequestInfo {
            is_resource_request: false,
            verb: Verb::from_method(method),
            api_prefix: String::new(),
            api_group: String::new(),
            api_version: String::new(),
            namespace: None,
            resource: None,
            subresource: None,
            name: None,
        }
    }
}

/// The stream a request opens, for callers that have not classified it otherwise.
#[must_use]
pub fn is_streaming(method: &http::Method, path: &str, query: Option<&str>) -> Option<StreamKind> {
    RequestInfo::classify(method, path, query).stream_kind(query)
}

/// The path as Go's `url.URL.Path` holds it: percent-decoded before it is split, so `%2F`
/// separates segments for the API server and must for us too. `None` where Go rejects the
/// request (a bad escape) or where the result is not UTF-8 (no valid name is). Borrows unless
/// the path has escapes.
fn decode_path(path: &str) -> Option<Cow<'_, str>> {
    if !path.contains('%') {
        return Some(Cow::Borrowed(path));
    }
    if !escapes_are_valid(path) {
        return None;
    }
    percent_decode_str(path).decode_utf8().ok()
}

/// Whether every `%` starts a two-hex-digit escape, as Go's unescaping demands.
fn escapes_are_valid(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut rest = 0;
    while let Some(offset) = bytes[rest..].iter().position(|&b| b == b'%') {
        let escape = rest + offset;
        match bytes.get(escape + 1..escape + 3) {
            Some(hex) if hex.iter().all(u8::is_ascii_hexdigit) => rest = escape + 3,
            _ => return false,
        }
    }
    true
}

/// Go's `splitPath`: trim slashes at both ends, then split, keeping the first `MAX_SEGMENTS`.
fn split_path<'p, 'b>(path: &'p str, buffer: &'b mut [&'p str; MAX_SEGMENTS]) -> &'b [&'p str] {
    let trimmed = path.trim_matches('/');
    if trimmed.is_empty() {
        return &[];
    }
    let mut len = 0;
    for (slot, segment) in buffer.iter_mut().zip(trimmed.split('/')) {
        *slot = segment;
        len += 1;
    }
    &buffer[..len]
}

/// The `RequestInfoFactory` rules; `None` where the path names no resource.
fn classify_resource(
    method: &http::Method,
    segments: &[&str],
    query: Option<&str>,
) -> Option<RequestInfo> {
    let (api_prefix, api_group, rest) = match segments {
        [CORE_PREFIX, rest @ ..] => (CORE_PREFIX, None, rest),
        [GROUPED_PREFIX, group, rest @ ..] => (GROUPED_PREFIX, Some(*group), rest),
        _ => return None,
    };
    // A bare `/api/v1` or `/apis/GROUP/VERSION` is discovery, and `/api/v1/watch` names nothing.
    let (api_version, special, rest) = match rest {
        [version, "watch", rest @ ..] => (*version, Some(SpecialVerb::Watch), rest),
        [version, "proxy", rest @ ..] => (*version, Some(SpecialVerb::Proxy), rest),
        [version, rest @ ..] => (*version, None, rest),
        [] => return None,
    };
    let (namespace, parts) = match rest {
        ["namespaces", namespace, resource, ..] if !NAMESPACE_SUBRESOURCES.contains(resource) => {
            (Some(*namespace), &rest[2..])
        }
        ["namespaces", namespace, ..] => (Some(*namespace), rest),
        _ => (None, rest),
    };
    let (&resource, tail) = parts.split_first()?;
    let name = tail.first().copied();
    // The legacy proxy prefix proxies everything after the name; nothing there is a subresource.
    let subresource = tail
        .get(1)
        .copied()
        .filter(|_| special != Some(SpecialVerb::Proxy));

    let named = [
        api_group,
        Some(api_version),
        namespace,
        Some(resource),
        name,
        subresource,
    ];
    if !named.into_iter().flatten().all(is_plain_segment) {
        return None;
    }

    let mut verb = match special {
        Some(SpecialVerb::Watch) => Verb::Watch,
        Some(SpecialVerb::Proxy) => Verb::Proxy,
        None => Verb::from_resource_method(method),
    };
    let mut name = name.map(str::to_owned);
    if name.is_none() && verb == Verb::Get {
        let [watch, selector] = query::first_values(query, ["watch", "fieldSelector"]);
        verb = if query::is_true(watch.as_deref()) {
            Verb::Watch
        } else {
            Verb::List
        };
        name = selector.and_then(|selector| query::selector_name(&selector));
    }
    if name.is_none() && verb == Verb::Delete {
        verb = Verb::DeleteCollection;
    }
    if let Some(kubectl_verb) = subresource.and_then(subresource_verb) {
        verb = kubectl_verb;
    }

    Some(RequestInfo {
        is_resource_request: true,
        verb,
        api_prefix: api_prefix.to_owned(),
        api_group: api_group.unwrap_or_default().to_owned(),
        api_version: api_version.to_owned(),
        namespace: namespace.map(str::to_owned),
        resource: Some(resource.to_owned()),
        subresource: subresource.map(str::to_owned),
        name,
    })
}

/// The kubectl command a subresource stands for, whatever the HTTP method (exec upgrades with
/// `GET` over WebSocket and with `POST` over SPDY).
fn subresource_verb(subresource: &str) -> Option<Verb> {
    match subresource {
        "exec" => Some(Verb::Exec),
        "attach" => Some(Verb::Attach),
        "portforward" => Some(Verb::PortForward),
        "log" => Some(Verb::Log),
        "proxy" => Some(Verb::Proxy),
        other if CONNECT_SUBRESOURCES.contains(&other) => Some(Verb::Connect),
        _ => None,
    }
}

/// A segment that can name something. The API server would take an empty or dot segment as a
/// name and then refuse the request; calling such paths non-resource says the same more plainly.
fn is_plain_segment(segment: &str) -> bool {
    !segment.is_empty() && segment != "." && segment != ".."
}

#[cfg(test)]
mod tests;
