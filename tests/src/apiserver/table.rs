//! Server-side printing: `meta.k8s.io` `Table` responses with the columns the real server's
//! printers produce, which is what `kubectl get` shows.

use std::time::SystemTime;

use serde_json::{json, Map, Value};

use super::catalog::Resource;
use super::clock::age;
use super::store::Stored;

/// How much of each object a row carries (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub(crate) fn parse(value: Option<&str>) -> Option<Self> {
        match value {
            None | Some("") | Some("Metadata") => Some(Self::Metadata),
            Some("None") => Some(Self::None),
            Some("Object") => Some(Self::Object),
            Some(_) => None,
        }
    }
}

/// A Table request: which `meta.k8s.io` version and what rows carry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TableRequest {
    pub(crate) version: &'static str,
    pub(crate) include: IncludeObject,
}

impl TableRequest {
    /// The Content-Type the real server answers a Table request with.
    pub(crate) fn content_type(&self) -> String {
        format!("application/json;as=Table;v={};g=meta.k8s.io", self.version)
    }
}

fn column(name: &str, kind: &str, format: &str, priority: u8, description: &str) -> Value {
    json!({"name": name, "type": kind, "format": format, "description": description, "priority": priority})
}

fn name_column() -> Value {
    column("Name", "string", "name", 0, "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names")
}

fn age_column() -> Value {
    column("Age", "string", "", 0, "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata")
}

/// Column definitions for `resource`; resources without a printer get Name and Created At.
pub(crate) fn columns(resource: &Resource) -> Vec<Value> {
    match resource.plural {
        "pods" => pod_columns(),
        "namespaces" => vec![name_column(), text("Status", 0, "The status of the namespace"), age_column()],
        "configmaps" => vec![name_column(), int_column("Data", "Data contains the configuration data."), age_column()],
        "secrets" => vec![name_column(), text("Type", 0, "The type of the secret"), int_column("Data", "The number of entries in the data"), age_column()],
        "services" => service_columns(),
        "deployments" | "replicasets" => workload_columns(resource.plural),
        _ => vec![name_column(), column("Created At", "date", "", 0, "CreationTimestamp is a timestamp representing the server time when this object was created.")],
    }
}

fn text(name: &str, priority: u8, description: &str) -> Value {
    column(name, "string", "", priority, description)
}

fn int_column(name: &str, description: &str) -> Value {
    column(name, "integer", "", 0, description)
}

fn pod_columns() -> Vec<Value> {
    vec![
        name_column(),
        text("Ready", 0, "The aggregate readiness state of this pod for accepting traffic."),
        text("Status", 0, "The aggregate status of the containers in this pod."),
        text("Restarts", 0, "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
        age_column(),
        text("IP", 1, "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated."),
        text("Node", 1, "NodeName is a request to schedule this pod onto a specific node."),
        text("Nominated Node", 1, "nominatedNodeName is set only when this pod preempts other pods on the node."),
        text("Readiness Gates", 1, "If specified, all readiness gates will be evaluated for pod readiness."),
    ]
}

fn service_columns() -> Vec<Value> {
    vec![
        name_column(),
        text("Type", 0, "type determines how the Service is exposed."),
        text("Cluster-IP", 0, "clusterIP is the IP address of the service."),
        text("External-IP", 0, "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service."),
        text("Port(s)", 0, "The list of ports that are exposed by this service."),
        age_column(),
        text("Selector", 1, "Route service traffic to pods with label keys and values matching this selector."),
    ]
}

fn workload_columns(plural: &str) -> Vec<Value> {
    let mut columns = vec![name_column()];
    if plural == "deployments" {
        columns.extend([
            text("Ready", 0, "Number of the pod with ready state"),
            int_column("Up-to-date", "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
            int_column("Available", "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
        ]);
    } else {
        columns.extend([
            int_column("Desired", "Replicas is the number of desired replicas."),
            int_column("Current", "Replicas is the most recently observed number of replicas."),
            int_column("Ready", "readyReplicas is the number of pods targeted by this ReplicaSet with a Ready Condition."),
        ]);
    }
    columns.extend([
        age_column(),
        text("Containers", 1, "Names of each container in the template."),
        text(
            "Images",
            1,
            "Images referenced by each container in the template.",
        ),
        text("Selector", 1, "Label selector for pods."),
    ]);
    columns
}

/// A Table of `items`; `with_columns` is false for watch events after the first.
pub(crate) fn table(
    resource: &Resource,
    items: &[Stored],
    list_meta: Value,
    request: TableRequest,
    with_columns: bool,
) -> Value {
    let now = SystemTime::now();
    let rows: Vec<Value> = items
        .iter()
        .map(|item| row(resource, item, request, now))
        .collect();
    let columns = if with_columns {
        json!(columns(resource))
    } else {
        Value::Null
    };
    json!({
        "kind": "Table",
        "apiVersion": format!("meta.k8s.io/{}", request.version),
        "metadata": list_meta,
        "columnDefinitions": columns,
        "rows": rows
    })
}

fn row(resource: &Resource, item: &Stored, request: TableRequest, now: SystemTime) -> Value {
    let mut row = json!({"cells": cells(resource, &item.object, now)});
    match request.include {
        IncludeObject::None => {}
        IncludeObject::Object => row["object"] = (*item.object).clone(),
        IncludeObject::Metadata => {
            row["object"] = json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": format!("meta.k8s.io/{}", request.version),
                "metadata": item.object["metadata"]
            });
        }
    }
    row
}

fn count(value: &Value) -> usize {
    value.as_object().map_or(0, Map::len)
}

fn int(value: &Value) -> i64 {
    value.as_i64().unwrap_or(0)
}

fn text_or_none(value: &Value) -> String {
    value
        .as_str()
        .filter(|s| !s.is_empty())
        .unwrap_or("<none>")
        .to_owned()
}

fn cells(resource: &Resource, object: &Value, now: SystemTime) -> Vec<Value> {
    let name = json!(object["metadata"]["name"]);
    let age = json!(age(object["metadata"]["creationTimestamp"].as_str(), now));
    let spec = &object["spec"];
    match resource.plural {
        "pods" => pod_cells(object, name, age),
        "namespaces" => vec![
            name,
            json!(object["status"]["phase"].as_str().unwrap_or("Active")),
            age,
        ],
        "configmaps" => vec![
            name,
            json!(count(&object["data"]) + count(&object["binaryData"])),
            age,
        ],
        "secrets" => vec![
            name,
            json!(object["type"].as_str().unwrap_or("Opaque")),
            json!(count(&object["data"])),
            age,
        ],
        "services" => service_cells(spec, name, age),
        "deployments" | "replicasets" => workload_cells(resource.plural, object, name, age),
        _ => vec![name, object["metadata"]["creationTimestamp"].clone()],
    }
}

fn pod_cells(object: &Value, name: Value, age: Value) -> Vec<Value> {
    let statuses = object["status"]["containerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let total = object["spec"]["containers"].as_array().map_or(0, Vec::len);
    let ready = statuses
        .iter()
        .filter(|s| s["ready"] == json!(true))
        .count();
    let restarts: i64 = statuses.iter().map(|s| int(&s["restartCount"])).sum();
    let waiting = statuses
        .iter()
        .find_map(|s| s["state"]["waiting"]["reason"].as_str());
    let phase = object["status"]["phase"].as_str().unwrap_or("Pending");
    let reason = if !object["metadata"]["deletionTimestamp"].is_null() {
        "Terminating"
    } else {
        waiting.unwrap_or(phase)
    };
    vec![
        name,
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts.to_string()),
        age,
        json!(text_or_none(&object["status"]["podIP"])),
        json!(text_or_none(&object["spec"]["nodeName"])),
        json!(text_or_none(&object["status"]["nominatedNodeName"])),
        json!("<none>"),
    ]
}

fn service_cells(spec: &Value, name: Value, age: Value) -> Vec<Value> {
    let ports: Vec<String> = spec["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let protocol = p["protocol"].as_str().unwrap_or("TCP");
            format!("{}/{protocol}", int(&p["port"]))
        })
        .collect();
    let ports = if ports.is_empty() {
        "<none>".to_owned()
    } else {
        ports.join(",")
    };
    vec![
        name,
        json!(spec["type"].as_str().unwrap_or("ClusterIP")),
        json!(text_or_none(&spec["clusterIP"])),
        json!("<none>"),
        json!(ports),
        age,
        json!(selector_text(&spec["selector"])),
    ]
}

/// Deployment (Ready, Up-to-date, Available) or ReplicaSet (Desired, Current, Ready) cells.
fn workload_cells(plural: &str, object: &Value, name: Value, age: Value) -> Vec<Value> {
    let (spec, status) = (&object["spec"], &object["status"]);
    let mut cells = if plural == "deployments" {
        let ready = format!(
            "{}/{}",
            int(&status["readyReplicas"]),
            int(&spec["replicas"])
        );
        vec![
            name,
            json!(ready),
            json!(int(&status["updatedReplicas"])),
            json!(int(&status["availableReplicas"])),
            age,
        ]
    } else {
        vec![
            name,
            json!(int(&spec["replicas"])),
            json!(int(&status["replicas"])),
            json!(int(&status["readyReplicas"])),
            age,
        ]
    };
    cells.extend(template_cells(spec));
    cells
}

/// Containers, Images and Selector cells of a workload.
fn template_cells(spec: &Value) -> Vec<Value> {
    let containers = spec["template"]["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = containers
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    let images: Vec<&str> = containers
        .iter()
        .filter_map(|c| c["image"].as_str())
        .collect();
    vec![
        json!(names.join(",")),
        json!(images.join(",")),
        json!(selector_text(&spec["selector"]["matchLabels"])),
    ]
}

fn selector_text(labels: &Value) -> String {
    match labels.as_object() {
        Some(map) if !map.is_empty() => map
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(","),
        _ => "<none>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::catalog::find;
    use crate::apiserver::seed;
    use crate::apiserver::store::Store;

    #[test]
    fn pod_rows_look_like_kubectl_get_pods() {
        let store = Store::new();
        seed::load(&store, "CA", 0, SystemTime::now());
        let pods = find("", "v1", "pods").unwrap();
        let (items, _) = store.list(pods, Some("default"));
        let request = TableRequest {
            version: "v1",
            include: IncludeObject::Metadata,
        };
        let table = table(pods, &items, json!({"resourceVersion": "1"}), request, true);
        assert_eq!(table["columnDefinitions"].as_array().unwrap().len(), 9);
        let cells = &table["rows"][0]["cells"];
        assert_eq!(cells[1], "1/1");
        assert_eq!(cells[2], "Running");
        assert_eq!(cells[3], "0");
        assert_eq!(cells[4], "30m");
        assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    }

    #[test]
    fn deployment_and_default_columns() {
        let store = Store::new();
        seed::load(&store, "CA", 0, SystemTime::now());
        let deployments = find("apps", "v1", "deployments").unwrap();
        let (items, _) = store.list(deployments, None);
        let request = TableRequest {
            version: "v1",
            include: IncludeObject::None,
        };
        let table = table(deployments, &items, json!({}), request, false);
        assert_eq!(table["rows"][0]["cells"][1], "3/3");
        assert_eq!(table["rows"][0]["cells"][7], "app=nginx");
        assert!(table["rows"][0].get("object").is_none());
        assert!(table["columnDefinitions"].is_null());
        assert_eq!(columns(find("", "v1", "events").unwrap()).len(), 2);
        assert_eq!(IncludeObject::parse(Some("bogus")), None);
    }
}
