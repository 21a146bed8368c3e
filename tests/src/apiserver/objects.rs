//! Resource requests: dispatch by verb, and the reads (get, list) with JSON or Table output.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{json, Value};

use super::catalog::Resource;
use super::request::{negotiate, Output, Query};
use super::response::{chunked, full, response, ApiError, Body};
use super::router::Target;
use super::selector::Filter;
use super::store::Stored;
use super::table::table;
use super::{exec, logs, scale, watch, writes, State};

pub(crate) async fn serve(
    state: &Arc<State>,
    target: Target,
    request: Request<Incoming>,
    record: usize,
) -> Result<Response<Body>, ApiError> {
    let query = Query::parse(request.uri().query());
    let method = request.method().clone();
    match (
        target.subresource.as_deref(),
        target.name.is_some(),
        &method,
    ) {
        (Some("log"), _, &Method::GET) => logs::serve(state, &find_pod(state, &target)?, &query),
        (Some("exec" | "attach"), _, &Method::GET | &Method::POST) => {
            let pod = find_pod(state, &target)?;
            exec::serve(state, &target, &pod, &query, request)
        }
        (Some("portforward"), _, &Method::GET | &Method::POST) => Err(ApiError::bad_request(
            "port-forward is not implemented by the API server double",
        )),
        (Some("scale"), _, &Method::GET) => scale::get_scale(state, &target),
        (Some("scale"), _, &Method::PUT | &Method::PATCH) => {
            scale::update_scale(state, &target, request, record, &query).await
        }
        (Some("status"), _, &Method::GET) | (None, true, &Method::GET) => {
            get(state, &target, request.headers(), &query)
        }
        (Some("status"), _, &Method::PUT) | (None, true, &Method::PUT) => {
            writes::replace(state, &target, request, record, &query).await
        }
        (Some("status"), _, &Method::PATCH) | (None, true, &Method::PATCH) => {
            writes::patch(state, &target, request, record, &query).await
        }
        (None, true, &Method::DELETE) => {
            writes::delete(state, &target, request, record, &query).await
        }
        (None, false, &Method::GET) => list_or_watch(state, &target, request.headers(), &query),
        (None, false, &Method::POST)
            if target.namespace.is_some() || !target.resource.namespaced =>
        {
            writes::create(state, &target, request, record, &query).await
        }
        (None, false, &Method::DELETE) => writes::delete_collection(state, &target, &query),
        _ => Err(ApiError::MethodNotAllowed),
    }
}

fn find_pod(state: &State, target: &Target) -> Result<Stored, ApiError> {
    let name = target.name.as_deref().unwrap_or_default();
    let namespace = target.namespace.as_deref().unwrap_or_default();
    state
        .store
        .get(target.resource, namespace, name)
        .ok_or_else(|| not_found(target.resource, name))
}

pub(crate) fn not_found(resource: &Resource, name: &str) -> ApiError {
    ApiError::NotFound {
        resource: resource.plural.to_owned(),
        group: resource.group.to_owned(),
        name: name.to_owned(),
    }
}

fn get(
    state: &State,
    target: &Target,
    headers: &http::HeaderMap,
    query: &Query,
) -> Result<Response<Body>, ApiError> {
    let output = negotiate(headers, query)?;
    let name = target.name.as_deref().unwrap_or_default();
    let namespace = target.namespace.as_deref().unwrap_or_default();
    let stored = state
        .store
        .get(target.resource, namespace, name)
        .ok_or_else(|| not_found(target.resource, name))?;
    Ok(match output {
        Output::Json => object_response(StatusCode::OK, &stored),
        Output::Table(request) => {
            let meta = json!({"resourceVersion": stored.object["metadata"]["resourceVersion"]});
            let value = table(target.resource, &[stored], meta, request, true);
            response(
                StatusCode::OK,
                &request.content_type(),
                full(serde_json::to_vec(&value).unwrap_or_default()),
            )
        }
    })
}

/// The shared serialized form of `stored`, streamed in chunks.
pub(crate) fn object_response(code: StatusCode, stored: &Stored) -> Response<Body> {
    response(code, "application/json", chunked(vec![stored.json.clone()]))
}

fn list_or_watch(
    state: &Arc<State>,
    target: &Target,
    headers: &http::HeaderMap,
    query: &Query,
) -> Result<Response<Body>, ApiError> {
    let output = negotiate(headers, query)?;
    let filter = Filter::parse(
        target.resource.plural,
        query.get("labelSelector"),
        query.get("fieldSelector"),
    )?;
    if query.flag("watch")? {
        return watch::serve(state, target, filter, query, output);
    }
    let (items, rv) = state
        .store
        .list(target.resource, target.namespace.as_deref());
    let matching: Vec<Stored> = items
        .into_iter()
        .filter(|item| filter.matches(&item.object))
        .collect();
    let (page, next) = paginate(matching, query)?;
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if let Some((token, remaining)) = next {
        meta["continue"] = json!(token);
        meta["remainingItemCount"] = json!(remaining);
    }
    Ok(match output {
        Output::Json => list_response(target.resource, &page, meta),
        Output::Table(request) => {
            let value = table(target.resource, &page, meta, request, true);
            response(
                StatusCode::OK,
                &request.content_type(),
                full(serde_json::to_vec(&value).unwrap_or_default()),
            )
        }
    })
}

/// A `XxxList` assembled from the items' shared encodings, never copied into one buffer.
pub(crate) fn list_response(resource: &Resource, items: &[Stored], meta: Value) -> Response<Body> {
    let head = json!({"kind": resource.list_kind(), "apiVersion": resource.api_version(), "metadata": meta});
    let head = serde_json::to_string(&head).unwrap_or_default();
    let mut parts = vec![Bytes::from(format!(
        "{},\"items\":[",
        head.strip_suffix('}').unwrap_or(&head)
    ))];
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            parts.push(Bytes::from_static(b","));
        }
        parts.push(item.json.clone());
    }
    parts.push(Bytes::from_static(b"]}"));
    response(StatusCode::OK, "application/json", chunked(parts))
}

/// One page of a list: its items and, when more follow, the continue token and how many remain.
type Page = (Vec<Stored>, Option<(String, usize)>);

/// `limit` and `continue`: the token names the last item served, so pages stay stable.
fn paginate(items: Vec<Stored>, query: &Query) -> Result<Page, ApiError> {
    let start = match query.get("continue").filter(|t| !t.is_empty()) {
        None => 0,
        Some(token) => {
            let invalid = || ApiError::bad_request("continue key is not valid");
            let decoded = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
            let last = String::from_utf8(decoded).map_err(|_| invalid())?;
            items
                .iter()
                .position(|item| item_key(item) > last)
                .unwrap_or(items.len())
        }
    };
    let limit = match query.number("limit")? {
        Some(n) if n > 0 => usize::try_from(n).unwrap_or(usize::MAX),
        _ => usize::MAX,
    };
    let mut page: Vec<Stored> = items.into_iter().skip(start).collect();
    if page.len() <= limit {
        return Ok((page, None));
    }
    let remaining = page.len() - limit;
    page.truncate(limit);
    let token = page.last().map(item_key).unwrap_or_default();
    Ok((page, Some((URL_SAFE_NO_PAD.encode(token), remaining))))
}

fn item_key(item: &Stored) -> String {
    let namespace = item.object["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default();
    format!("{namespace}/{}", item.name())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::catalog::find;
    use crate::apiserver::{seed, store::Store};
    use http_body_util::BodyExt;

    #[test]
    fn pages_with_continue_tokens() {
        let store = Store::new();
        seed::load(&store, "CA", 0, std::time::SystemTime::now());
        let (pods, _) = store.list(find("", "v1", "pods").unwrap(), None);
        assert_eq!(pods.len(), 4);
        let (first, next) = paginate(pods.clone(), &Query::parse(Some("limit=3"))).unwrap();
        let (token, remaining) = next.unwrap();
        assert_eq!((first.len(), remaining), (3, 1));
        let (second, next) = paginate(
            pods,
            &Query::parse(Some(&format!("limit=3&continue={token}"))),
        )
        .unwrap();
        assert_eq!(second.len(), 1);
        assert!(next.is_none());
        assert_ne!(first[2].name(), second[0].name());
    }

    #[tokio::test]
    async fn list_is_valid_json() {
        let store = Store::new();
        seed::load(&store, "CA", 100_000, std::time::SystemTime::now());
        let resource = find("", "v1", "configmaps").unwrap();
        let (items, _) = store.list(resource, None);
        let body = list_response(resource, &items, json!({"resourceVersion": "7"})).into_body();
        let bytes = body.collect().await.unwrap().to_bytes();
        let list: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(list["kind"], "ConfigMapList");
        assert_eq!(list["items"].as_array().unwrap().len(), 3);
        assert_eq!(list["metadata"]["resourceVersion"], "7");
    }
}
