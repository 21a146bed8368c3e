//! Writes: create (JSON or protobuf bodies), replace, merge patch, delete, delete collection, and
//! the `scale` subresource.

use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{json, Map, Value};

use super::catalog::Resource;
use super::objects::{list_response, object_response};
use super::protobuf;
use super::request::{content_type, read_body, Query};
use super::response::{delete_success, json_response, ApiError, Body};
use super::router::Target;
use super::selector::Filter;
use super::State;

/// Reads, records and decodes a request body into a JSON object.
pub(crate) async fn body_object(
    state: &State,
    request: Request<Incoming>,
    record: usize,
) -> Result<Value, ApiError> {
    let media = content_type(request.headers());
    let body = read_body(request.into_body()).await?;
    state.recorder.set_body(record, &body);
    let value = match media.as_str() {
        "application/vnd.kubernetes.protobuf" => {
            protobuf::decode(&body).map_err(|e| ApiError::bad_request(e.to_string()))?
        }
        "application/json" | "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
            serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("error decoding JSON body: {e}")))?
        }
        other => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "the body of the request was in an unknown format ({other}) - accepted media types include: application/json, application/vnd.kubernetes.protobuf"
            )))
        }
    };
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    Ok(value)
}

/// Checks kind, apiVersion and namespace of a submitted object against the URL.
fn check_identity(
    resource: &Resource,
    namespace: &str,
    object: &mut Value,
) -> Result<(), ApiError> {
    for (field, expected) in [
        ("kind", resource.kind.to_owned()),
        ("apiVersion", resource.api_version()),
    ] {
        match object[field].as_str() {
            Some(found) if found != expected => {
                return Err(ApiError::bad_request(format!(
                    "the {field} in the body ({found}) does not match the expected {field} ({expected})"
                )))
            }
            _ => object[field] = json!(expected),
        }
    }
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    if !resource.namespaced {
        if let Some(metadata) = object["metadata"].as_object_mut() {
            metadata.remove("namespace");
        }
        return Ok(());
    }
    match object["metadata"]["namespace"].as_str() {
        Some(found) if !found.is_empty() && found != namespace => Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        _ => {
            object["metadata"]["namespace"] = json!(namespace);
            Ok(())
        }
    }
}

/// DNS-1123 subdomain, or label for namespaces, as the real validation requires.
fn check_name(resource: &Resource, name: &str) -> Result<(), ApiError> {
    let max = if resource.plural == "namespaces" {
        63
    } else {
        253
    };
    let allowed = |c: char| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (c == '.' && max == 253)
    };
    let edges_ok = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !name.is_empty() && name.len() <= max && name.chars().all(allowed) && edges_ok {
        return Ok(());
    }
    let message = if name.is_empty() {
        "Required value: name or generateName is required".to_owned()
    } else {
        format!("Invalid value: {name:?}: a lowercase RFC 1123 name must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character")
    };
    Err(ApiError::Invalid {
        kind: resource.kind.to_owned(),
        name: name.to_owned(),
        field: "metadata.name".to_owned(),
        message,
    })
}

pub(crate) async fn create(
    state: &Arc<State>,
    target: &Target,
    request: Request<Incoming>,
    record: usize,
    query: &Query,
) -> Result<Response<Body>, ApiError> {
    let dry_run = query.dry_run()?;
    let namespace = target.namespace.clone().unwrap_or_default();
    let mut object = body_object(state, request, record).await?;
    check_identity(target.resource, &namespace, &mut object)?;
    let metadata = &mut object["metadata"];
    if metadata["name"].as_str().unwrap_or_default().is_empty() {
        if let Some(prefix) = metadata["generateName"].as_str().filter(|p| !p.is_empty()) {
            let suffix: String = uuid::Uuid::new_v4()
                .simple()
                .to_string()
                .chars()
                .take(5)
                .collect();
            metadata["name"] = json!(format!("{prefix}{suffix}"));
        }
    }
    check_name(
        target.resource,
        object["metadata"]["name"].as_str().unwrap_or_default(),
    )?;
    let stored = state
        .store
        .create(target.resource, &namespace, object, dry_run)?;
    Ok(object_response(StatusCode::CREATED, &stored))
}

pub(crate) async fn replace(
    state: &Arc<State>,
    target: &Target,
    request: Request<Incoming>,
    record: usize,
    query: &Query,
) -> Result<Response<Body>, ApiError> {
    let dry_run = query.dry_run()?;
    let namespace = target.namespace.clone().unwrap_or_default();
    let name = target.name.clone().unwrap_or_default();
    let mut object = body_object(state, request, record).await?;
    check_identity(target.resource, &namespace, &mut object)?;
    match object["metadata"]["name"].as_str() {
        Some(found) if found == name => {}
        found => {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                found.unwrap_or_default()
            )))
        }
    }
    let resource = target.resource;
    let stored = state
        .store
        .update(resource, &namespace, &name, dry_run, |current| {
            check_version(resource, &name, current, &object)?;
            Ok(object)
        })?;
    Ok(object_response(StatusCode::OK, &stored))
}

pub(crate) async fn patch(
    state: &Arc<State>,
    target: &Target,
    request: Request<Incoming>,
    record: usize,
    query: &Query,
) -> Result<Response<Body>, ApiError> {
    let dry_run = query.dry_run()?;
    let media = content_type(request.headers());
    if media != "application/merge-patch+json" && media != "application/strategic-merge-patch+json"
    {
        return Err(ApiError::UnsupportedMediaType(format!(
            "the double supports merge and strategic merge patches only, not {media}"
        )));
    }
    let patch = body_object(state, request, record).await?;
    let (namespace, name) = (
        target.namespace.clone().unwrap_or_default(),
        target.name.clone().unwrap_or_default(),
    );
    let resource = target.resource;
    let stored = state
        .store
        .update(resource, &namespace, &name, dry_run, |current| {
            check_version(resource, &name, current, &patch)?;
            let mut next = current.clone();
            merge_patch(&mut next, &patch);
            Ok(next)
        })?;
    Ok(object_response(StatusCode::OK, &stored))
}

/// A submitted `metadata.resourceVersion` must match the stored one (optimistic concurrency).
fn check_version(
    resource: &Resource,
    name: &str,
    current: &Value,
    submitted: &Value,
) -> Result<(), ApiError> {
    match submitted["metadata"]["resourceVersion"].as_str() {
        Some(rv)
            if !rv.is_empty() && Some(rv) != current["metadata"]["resourceVersion"].as_str() =>
        {
            Err(ApiError::Conflict {
                resource: resource.plural.to_owned(),
                group: resource.group.to_owned(),
                name: name.to_owned(),
            })
        }
        _ => Ok(()),
    }
}

/// RFC 7386 JSON merge patch; also used for strategic merge patches, which agree with it for
/// maps (labels, annotations, data) but not for lists with merge keys.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    let Some(patch) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    for (key, value) in patch {
        if value.is_null() {
            if let Some(map) = target.as_object_mut() {
                map.remove(key);
            }
        } else {
            merge_patch(&mut target[key.as_str()], value);
        }
    }
}

pub(crate) async fn delete(
    state: &Arc<State>,
    target: &Target,
    request: Request<Incoming>,
    record: usize,
    query: &Query,
) -> Result<Response<Body>, ApiError> {
    // DeleteOptions may come as a body; read it so it is recorded, but the double deletes at once.
    let body = read_body(request.into_body()).await?;
    state.recorder.set_body(record, &body);
    let (namespace, name) = (
        target.namespace.clone().unwrap_or_default(),
        target.name.clone().unwrap_or_default(),
    );
    let deleted = state
        .store
        .delete(target.resource, &namespace, &name, query.dry_run()?)?;
    let status = delete_success(
        target.resource.plural,
        target.resource.group,
        &name,
        deleted.uid(),
    );
    Ok(json_response(StatusCode::OK, &status))
}

pub(crate) fn delete_collection(
    state: &Arc<State>,
    target: &Target,
    query: &Query,
) -> Result<Response<Body>, ApiError> {
    if !target.resource.verbs.contains(&"deletecollection") {
        return Err(ApiError::MethodNotAllowed);
    }
    let filter = Filter::parse(
        target.resource.plural,
        query.get("labelSelector"),
        query.get("fieldSelector"),
    )?;
    let dry_run = query.dry_run()?;
    let (items, _) = state
        .store
        .list(target.resource, target.namespace.as_deref());
    let mut deleted = Vec::new();
    for item in items.iter().filter(|item| filter.matches(&item.object)) {
        let namespace = item.object["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default();
        if let Ok(gone) = state
            .store
            .delete(target.resource, namespace, item.name(), dry_run)
        {
            deleted.push(gone);
        }
    }
    let rv = state.store.resource_version().to_string();
    Ok(list_response(
        target.resource,
        &deleted,
        json!({"resourceVersion": rv}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::catalog::find;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut target = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut target, &json!({"a": "z", "c": {"f": null}, "n": [1]}));
        assert_eq!(target, json!({"a": "z", "c": {"d": "e"}, "n": [1]}));
    }

    #[test]
    fn identity_checks() {
        let cms = find("", "v1", "configmaps").unwrap();
        let mut object = json!({"metadata": {"name": "x"}});
        check_identity(cms, "default", &mut object).unwrap();
        assert_eq!(object["kind"], "ConfigMap");
        assert_eq!(object["metadata"]["namespace"], "default");
        let mut wrong_ns = json!({"metadata": {"name": "x", "namespace": "other"}});
        assert!(check_identity(cms, "default", &mut wrong_ns).is_err());
        let mut wrong_kind = json!({"kind": "Secret", "metadata": {}});
        assert!(check_identity(cms, "default", &mut wrong_kind).is_err());
    }

    #[test]
    fn names_are_validated() {
        let cms = find("", "v1", "configmaps").unwrap();
        let namespaces = find("", "v1", "namespaces").unwrap();
        assert!(check_name(cms, "kube-root-ca.crt").is_ok());
        assert!(check_name(namespaces, "a.b").is_err());
        assert!(check_name(cms, "").is_err());
        assert!(check_name(cms, "Upper").is_err());
        assert!(check_name(cms, "-x").is_err());
    }
}
