//! Request entry point: record, authenticate, route by path, and turn errors into `Status`.

use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use super::catalog::{self, Resource};
use super::discovery;
use super::objects;
use super::response::{full, json_response, response, ApiError, Body};
use super::State;

/// A request for a resource, parsed from its path.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) resource: &'static Resource,
    pub(crate) namespace: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) subresource: Option<String>,
}

#[derive(Debug)]
enum Route {
    Root,
    Version,
    Health,
    CoreRoot,
    GroupsRoot,
    Group(String),
    GroupVersion(String, String),
    Resource(Target),
}

pub(crate) async fn handle(state: Arc<State>, request: Request<Incoming>) -> Response<Body> {
    let record = state.recorder.record(&request);
    if !authorized(&state, &request) {
        return ApiError::Unauthorized.into_response();
    }
    if let Some(error) = impersonation(&request) {
        return error.into_response();
    }
    let result = match parse_path(request.uri().path()) {
        Ok(route) => dispatch(&state, route, request, record).await,
        Err(error) => Err(error),
    };
    result.unwrap_or_else(ApiError::into_response)
}

fn authorized<B>(state: &State, request: &Request<B>) -> bool {
    let expected = format!("Bearer {}", state.config.token);
    request
        .headers()
        .get_all(http::header::AUTHORIZATION)
        .iter()
        .any(|value| value.as_bytes() == expected.as_bytes())
}

/// The token belongs to a service account without `impersonate` rights, so, like a real
/// cluster, the double refuses any `Impersonate-*` header.
fn impersonation<B>(request: &Request<B>) -> Option<ApiError> {
    let (name, value) = request
        .headers()
        .iter()
        .find(|(name, _)| name.as_str().starts_with("impersonate-"))?;
    let kind = match name.as_str() {
        "impersonate-group" => "groups",
        "impersonate-uid" => "uids",
        n if n.starts_with("impersonate-extra-") => "userextras",
        _ => "users",
    };
    let who = value.to_str().unwrap_or("?");
    Some(ApiError::Forbidden(format!(
        "{kind} \"{who}\" is forbidden: User \"system:serviceaccount:default:double\" cannot impersonate resource \"{kind}\" in API group \"\" at the cluster scope"
    )))
}

async fn dispatch(
    state: &Arc<State>,
    route: Route,
    request: Request<Incoming>,
    record: usize,
) -> Result<Response<Body>, ApiError> {
    if let Route::Resource(target) = route {
        return objects::serve(state, target, request, record).await;
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return Err(ApiError::MethodNotAllowed);
    }
    let accept = request
        .headers()
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let aggregated = state.config.aggregated_discovery;
    match route {
        Route::Root => Ok(json_response(
            StatusCode::OK,
            &json!({"paths": [
                "/api", "/api/v1", "/apis", "/apis/apps", "/apis/apps/v1", "/healthz", "/livez", "/readyz", "/version"
            ]}),
        )),
        Route::Version => Ok(json_response(StatusCode::OK, &discovery::version())),
        Route::Health => Ok(response(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            full("ok"),
        )),
        Route::CoreRoot => Ok(discovery::core_root(
            accept,
            aggregated,
            &state.server_address,
        )),
        Route::GroupsRoot => Ok(discovery::groups_root(accept, aggregated)),
        Route::Group(group) => discovery::group(&group),
        Route::GroupVersion(group, version) => discovery::resource_list(&group, &version),
        Route::Resource(_) => Err(ApiError::NoSuchPath),
    }
}

fn parse_path(path: &str) -> Result<Route, ApiError> {
    let trimmed = path.trim_start_matches('/');
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    let segments: Vec<&str> = if trimmed.is_empty() {
        Vec::new()
    } else {
        trimmed.split('/').collect()
    };
    if segments.iter().any(|s| s.is_empty()) {
        return Err(ApiError::NoSuchPath);
    }
    match segments.as_slice() {
        [] => Ok(Route::Root),
        ["version"] => Ok(Route::Version),
        ["healthz" | "livez" | "readyz"] => Ok(Route::Health),
        ["api"] => Ok(Route::CoreRoot),
        ["api", version] => Ok(Route::GroupVersion(String::new(), (*version).to_owned())),
        ["api", version, rest @ ..] => resource_route("", version, rest),
        ["apis"] => Ok(Route::GroupsRoot),
        ["apis", group] => Ok(Route::Group((*group).to_owned())),
        ["apis", group, version] => Ok(Route::GroupVersion(
            (*group).to_owned(),
            (*version).to_owned(),
        )),
        ["apis", group, version, rest @ ..] => resource_route(group, version, rest),
        _ => Err(ApiError::NoSuchPath),
    }
}

/// `[namespaces/NS/]PLURAL[/NAME[/SUBRESOURCE]]` within one group version.
fn resource_route(group: &str, version: &str, rest: &[&str]) -> Result<Route, ApiError> {
    let namespaced = match rest {
        ["namespaces", namespace, plural, tail @ ..] => catalog::find(group, version, plural)
            .filter(|r| r.namespaced)
            .map(|resource| (resource, Some((*namespace).to_owned()), tail)),
        _ => None,
    };
    let (resource, namespace, tail) = match namespaced {
        Some(found) => found,
        None => {
            let [plural, tail @ ..] = rest else {
                return Err(ApiError::NoSuchPath);
            };
            let resource = catalog::find(group, version, plural).ok_or(ApiError::NoSuchPath)?;
            // A namespaced resource is only reachable by name inside its namespace.
            if resource.namespaced && !tail.is_empty() {
                return Err(ApiError::NoSuchPath);
            }
            (resource, None, tail)
        }
    };
    let (name, subresource) = match tail {
        [] => (None, None),
        [name] => (Some((*name).to_owned()), None),
        [name, sub] if resource.subresource(sub).is_some() => {
            (Some((*name).to_owned()), Some((*sub).to_owned()))
        }
        _ => return Err(ApiError::NoSuchPath),
    };
    Ok(Route::Resource(Target {
        resource,
        namespace,
        name,
        subresource,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(path: &str) -> Target {
        match parse_path(path) {
            Ok(Route::Resource(target)) => target,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn parses_resource_paths() {
        let pods = target("/api/v1/namespaces/default/pods");
        assert_eq!(
            (pods.resource.plural, pods.namespace.as_deref(), pods.name),
            ("pods", Some("default"), None)
        );
        let exec = target("/api/v1/namespaces/default/pods/web/exec");
        assert_eq!(exec.subresource.as_deref(), Some("exec"));
        let namespace = target("/api/v1/namespaces/default");
        assert_eq!(
            (namespace.resource.plural, namespace.name.as_deref()),
            ("namespaces", Some("default"))
        );
        let all = target("/api/v1/pods");
        assert!(all.namespace.is_none());
        let scale = target("/apis/apps/v1/namespaces/default/deployments/nginx/scale");
        assert_eq!(scale.resource.kind, "Deployment");
        assert_eq!(
            target("/api/v1/namespaces/default/status")
                .subresource
                .as_deref(),
            Some("status")
        );
    }

    #[test]
    fn unknown_paths_are_404() {
        for path in [
            "/api/v1/widgets",
            "/api/v1/pods/web",
            "/api/v1/namespaces/default/pods/web/bogus",
            "/api/v1/namespaces/default/pods/web/exec/more",
            "/apis/apps/v1/namespaces/default/pods",
            "/api//v1",
            "/nope",
        ] {
            assert!(
                matches!(parse_path(path), Err(ApiError::NoSuchPath)),
                "{path}"
            );
        }
        assert!(matches!(
            parse_path("/apis/apps/v1"),
            Ok(Route::GroupVersion(..))
        ));
        assert!(matches!(parse_path("/"), Ok(Route::Root)));
    }
}
