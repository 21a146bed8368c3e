//! The `scale` subresource of Deployments and ReplicaSets: an `autoscaling/v1` Scale view whose
//! writes change only the owner's `spec.replicas` (no controller acts on it).

use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{json, Value};

use super::objects::not_found;
use super::request::Query;
use super::response::{json_response, ApiError, Body};
use super::router::Target;
use super::writes::{body_object, merge_patch};
use super::State;

fn scale_of(object: &Value) -> Value {
    let labels = object["spec"]["selector"]["matchLabels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let selector: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    let metadata = &object["metadata"];
    json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": metadata["name"], "namespace": metadata["namespace"], "uid": metadata["uid"],
                     "resourceVersion": metadata["resourceVersion"], "creationTimestamp": metadata["creationTimestamp"]},
        "spec": {"replicas": object["spec"]["replicas"]},
        "status": {"replicas": object["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector.join(",")}
    })
}

pub(crate) fn get_scale(state: &Arc<State>, target: &Target) -> Result<Response<Body>, ApiError> {
    let (namespace, name) = (
        target.namespace.clone().unwrap_or_default(),
        target.name.clone().unwrap_or_default(),
    );
    let stored = state
        .store
        .get(target.resource, &namespace, &name)
        .ok_or_else(|| not_found(target.resource, &name))?;
    Ok(json_response(StatusCode::OK, &scale_of(&stored.object)))
}

/// PUT or PATCH of `scale`: only `spec.replicas` of the owner changes.
pub(crate) async fn update_scale(
    state: &Arc<State>,
    target: &Target,
    request: Request<Incoming>,
    record: usize,
    query: &Query,
) -> Result<Response<Body>, ApiError> {
    let dry_run = query.dry_run()?;
    let is_patch = request.method() == http::Method::PATCH;
    let submitted = body_object(state, request, record).await?;
    let (namespace, name) = (
        target.namespace.clone().unwrap_or_default(),
        target.name.clone().unwrap_or_default(),
    );
    let stored = state
        .store
        .update(target.resource, &namespace, &name, dry_run, |current| {
            let mut scale = scale_of(current);
            if is_patch {
                merge_patch(&mut scale, &submitted);
            } else {
                scale = submitted.clone();
            }
            let replicas = scale["spec"]["replicas"]
                .as_i64()
                .filter(|r| *r >= 0)
                .ok_or_else(|| ApiError::Invalid {
                    kind: "Scale".to_owned(),
                    name: name.clone(),
                    field: "spec.replicas".to_owned(),
                    message: "Invalid value: must be greater than or equal to 0".to_owned(),
                })?;
            let mut next = current.clone();
            next["spec"]["replicas"] = json!(replicas);
            Ok(next)
        })?;
    Ok(json_response(StatusCode::OK, &scale_of(&stored.object)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_view_of_a_deployment() {
        let deployment = json!({"metadata": {"name": "web", "namespace": "default", "resourceVersion": "5"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}},
            "status": {"replicas": 2}});
        let scale = scale_of(&deployment);
        assert_eq!(scale["kind"], "Scale");
        assert_eq!(scale["spec"]["replicas"], 3);
        assert_eq!(
            scale["status"],
            json!({"replicas": 2, "selector": "app=web"})
        );
        assert_eq!(scale["metadata"]["resourceVersion"], "5");
    }
}
