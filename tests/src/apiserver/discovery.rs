//! Discovery documents: `/version`, `/api`, `/apis` (legacy and aggregated `apidiscovery.k8s.io/v2`),
//! `/apis/GROUP` and the per-group-version resource lists.

use http::StatusCode;
use serde_json::{json, Value};

use super::catalog::{self, Resource};
use super::response::{full, json_response, response, ApiError, Body};

/// Media type a client sends (and a server answers with) for aggregated discovery.
const AGGREGATED_V2: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
const AGGREGATED_V2BETA1: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";

/// The version kubectl's `version` command shows for the server.
pub(crate) fn version() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": "v1.32.4",
        "gitCommit": "59526cd4867447956156ae3a602fcbac10a2c335",
        "gitTreeState": "clean",
        "buildDate": "2025-04-22T16:02:27Z",
        "goVersion": "go1.23.6",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

/// Which aggregated discovery version `accept` asks for, if any (`v2` preferred).
fn aggregated_version(accept: &str) -> Option<&'static str> {
    let compact: String = accept.chars().filter(|c| !c.is_whitespace()).collect();
    let offers = |media: &str| compact.split(',').any(|offer| same_media(offer, media));
    if offers(AGGREGATED_V2) {
        Some("v2")
    } else if offers(AGGREGATED_V2BETA1) {
        Some("v2beta1")
    } else {
        None
    }
}

/// Compares media types ignoring the order of their parameters.
fn same_media(a: &str, b: &str) -> bool {
    let sorted = |m: &str| {
        let mut parts: Vec<String> = m.split(';').map(str::to_ascii_lowercase).collect();
        parts[1..].sort();
        parts
    };
    sorted(a) == sorted(b)
}

/// `/api`: the legacy `APIVersions`, or the aggregated core group when asked for and enabled.
pub(crate) fn core_root(
    accept: &str,
    aggregated: bool,
    server_address: &str,
) -> http::Response<Body> {
    if let Some(version) = aggregated.then(|| aggregated_version(accept)).flatten() {
        let item = json!({"metadata": {"creationTimestamp": null}, "versions": [group_discovery("", "v1")]});
        return aggregated_response(version, vec![item]);
    }
    json_response(
        StatusCode::OK,
        &json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]
        }),
    )
}

/// `/apis`: the legacy `APIGroupList`, or the aggregated groups when asked for and enabled.
pub(crate) fn groups_root(accept: &str, aggregated: bool) -> http::Response<Body> {
    if let Some(version) = aggregated.then(|| aggregated_version(accept)).flatten() {
        let items = catalog::GROUPS
            .iter()
            .map(|group| {
                json!({
                    "metadata": {"name": group, "creationTimestamp": null},
                    "versions": [group_discovery(group, "v1")]
                })
            })
            .collect();
        return aggregated_response(version, items);
    }
    let groups: Vec<Value> = catalog::GROUPS.iter().map(|g| api_group(g)).collect();
    json_response(
        StatusCode::OK,
        &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
    )
}

/// `/apis/GROUP`.
pub(crate) fn group(name: &str) -> Result<http::Response<Body>, ApiError> {
    if !catalog::GROUPS.contains(&name) {
        return Err(ApiError::NoSuchPath);
    }
    Ok(json_response(StatusCode::OK, &api_group(name)))
}

/// `/api/v1` or `/apis/GROUP/VERSION`: the legacy `APIResourceList`.
pub(crate) fn resource_list(group: &str, version: &str) -> Result<http::Response<Body>, ApiError> {
    if !catalog::serves(group, version) {
        return Err(ApiError::NoSuchPath);
    }
    let mut resources = Vec::new();
    for resource in catalog::in_group_version(group, version) {
        resources.push(legacy_entry(resource));
        for sub in resource.subresources {
            let mut entry = json!({
                "name": format!("{}/{}", resource.plural, sub.name),
                "singularName": "",
                "namespaced": resource.namespaced,
                "kind": sub.kind,
                "verbs": sub.verbs,
            });
            if sub.group != group {
                entry["group"] = json!(sub.group);
                entry["version"] = json!(sub.version);
            }
            resources.push(entry);
        }
    }
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    let mut list =
        json!({"kind": "APIResourceList", "groupVersion": group_version, "resources": resources});
    if !group.is_empty() {
        list["apiVersion"] = json!("v1");
    }
    Ok(json_response(StatusCode::OK, &list))
}

fn legacy_entry(resource: &Resource) -> Value {
    let mut entry = json!({
        "name": resource.plural,
        "singularName": resource.singular,
        "namespaced": resource.namespaced,
        "kind": resource.kind,
        "verbs": resource.verbs,
    });
    if !resource.short_names.is_empty() {
        entry["shortNames"] = json!(resource.short_names);
    }
    if !resource.categories.is_empty() {
        entry["categories"] = json!(resource.categories);
    }
    entry
}

fn api_group(name: &str) -> Value {
    let version = json!({"groupVersion": format!("{name}/v1"), "version": "v1"});
    json!({
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": name,
        "versions": [version.clone()],
        "preferredVersion": version
    })
}

/// One `APIVersionDiscovery` of the aggregated format.
fn group_discovery(group: &str, version: &str) -> Value {
    let resources: Vec<Value> = catalog::in_group_version(group, version)
        .map(|resource| {
            let subresources: Vec<Value> = resource
                .subresources
                .iter()
                .map(|sub| {
                    json!({
                        "subresource": sub.name,
                        "responseKind": {"group": sub.group, "version": sub.version, "kind": sub.kind},
                        "verbs": sub.verbs
                    })
                })
                .collect();
            let mut entry = json!({
                "resource": resource.plural,
                "responseKind": {"group": group, "version": version, "kind": resource.kind},
                "scope": if resource.namespaced { "Namespaced" } else { "Cluster" },
                "singularResource": resource.singular,
                "verbs": resource.verbs,
            });
            if !resource.short_names.is_empty() {
                entry["shortNames"] = json!(resource.short_names);
            }
            if !resource.categories.is_empty() {
                entry["categories"] = json!(resource.categories);
            }
            if !subresources.is_empty() {
                entry["subresources"] = json!(subresources);
            }
            entry
        })
        .collect();
    json!({"version": version, "resources": resources, "freshness": "Current"})
}

fn aggregated_response(version: &str, items: Vec<Value>) -> http::Response<Body> {
    let list = json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items
    });
    let content_type = if version == "v2" {
        AGGREGATED_V2
    } else {
        AGGREGATED_V2BETA1
    };
    response(
        StatusCode::OK,
        content_type,
        full(serde_json::to_vec(&list).unwrap_or_default()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_json(response: http::Response<Body>) -> Value {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    const KUBECTL_ACCEPT: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";

    #[tokio::test]
    async fn aggregated_only_when_asked_and_enabled() {
        let aggregated = groups_root(KUBECTL_ACCEPT, true);
        assert_eq!(aggregated.headers()["content-type"], AGGREGATED_V2);
        let list = body_json(aggregated).await;
        assert_eq!(list["items"][0]["metadata"]["name"], "apps");
        let legacy = body_json(groups_root(KUBECTL_ACCEPT, false)).await;
        assert_eq!(legacy["kind"], "APIGroupList");
        let plain = body_json(core_root("application/json", true, "127.0.0.1:1")).await;
        assert_eq!(plain["kind"], "APIVersions");
    }

    #[tokio::test]
    async fn legacy_list_has_subresources() {
        let list = body_json(resource_list("apps", "v1").unwrap()).await;
        let names: Vec<&str> = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"deployments/scale"));
        assert!(resource_list("apps", "v9").is_err());
        assert!(group("nope").is_err());
    }

    #[test]
    fn media_parameters_in_any_order() {
        assert!(same_media(
            "application/json;as=APIGroupDiscoveryList;v=v2;g=apidiscovery.k8s.io",
            AGGREGATED_V2
        ));
        assert_eq!(aggregated_version("application/json"), None);
    }
}
