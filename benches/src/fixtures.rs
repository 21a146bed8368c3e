//! The bodies the stand-in API server serves, shaped like the real thing so that sizes and
//! framing match what kubectl receives.

use bytes::Bytes;
use serde_json::{json, Value};

/// Path of the small list: `kubectl get pods` in `default`.
pub const PODS_PATH: &str = "/api/v1/namespaces/default/pods";
/// Path of the large list: `kubectl get configmaps` in a namespace full of them.
pub const CONFIGMAPS_PATH: &str = "/api/v1/namespaces/default/configmaps";
/// The query kubectl sends with a list.
pub const LIST_QUERY: &str = "limit=500";
/// The query of a watch, as kubectl's `get -w` sends it after its list.
pub const WATCH_QUERY: &str = "watch=true&resourceVersion=1000";

/// Size of the large list the issue asks for: about 20 MB.
pub const LARGE_LIST_BYTES: usize = 20 * 1024 * 1024;

/// One pod as the API server returns it in a list (without `managedFields`, which kubectl's
/// default `get` does not ask for).
pub fn pod(index: usize) -> Value {
    let name = format!("web-7d9f8c6b5-{index:05}");
    json!({
        "metadata": {
            "name": name,
            "generateName": "web-7d9f8c6b5-",
            "namespace": "default",
            "uid": format!("5f0c7a3e-1d2b-4c8e-9a6f-{index:012}"),
            "resourceVersion": (1000 + index).to_string(),
            "creationTimestamp": "2025-05-01T10:00:00Z",
            "labels": {"app": "web", "pod-template-hash": "7d9f8c6b5"},
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9f8c6b5",
                "uid": "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9",
                "controller": true, "blockOwnerDeletion": true
            }]
        },
        "spec": {
            "containers": [{
                "name": "web", "image": "registry.example.com/web:1.27.3",
                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                "imagePullPolicy": "IfNotPresent"
            }],
            "restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default", "nodeName": "node-3",
            "terminationGracePeriodSeconds": 30
        },
        "status": {
            "phase": "Running", "hostIP": "10.0.0.13", "podIP": format!("10.244.3.{}", index % 250),
            "startTime": "2025-05-01T10:00:01Z",
            "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": "2025-05-01T10:00:05Z"},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": "2025-05-01T10:00:05Z"}
            ],
            "containerStatuses": [{
                "name": "web", "ready": true, "restartCount": 0, "started": true,
                "image": "registry.example.com/web:1.27.3",
                "state": {"running": {"startedAt": "2025-05-01T10:00:04Z"}}
            }]
        }
    })
}

/// A `PodList` of two pods: about 2 KB, the small list of the throughput and latency runs.
pub fn pod_list() -> Bytes {
    list("PodList", (0..2).map(pod).collect())
}

/// A `ConfigMapList` of at least `bytes` bytes: the large list.
pub fn configmap_list(bytes: usize) -> Bytes {
    // 4 KiB of data per object, as in a namespace of application configs.
    let data: String = "key=value; ".repeat(4096 / 11);
    let item = |i: usize| {
        json!({
            "metadata": {
                "name": format!("app-config-{i:06}"), "namespace": "default",
                "uid": format!("9e8d7c6b-5a49-3827-1605-{i:012}"),
                "resourceVersion": (5000 + i).to_string(),
                "creationTimestamp": "2025-05-01T10:00:00Z"
            },
            "data": {"application.properties": data}
        })
    };
    let per_item = item(0).to_string().len() + 1;
    list(
        "ConfigMapList",
        (0..bytes.div_ceil(per_item)).map(item).collect(),
    )
}

/// One watch event line (`ADDED`, newline-terminated), as the API server streams it.
pub fn watch_event() -> Bytes {
    let mut line = json!({"type": "ADDED", "object": pod(0)}).to_string();
    line.push('\n');
    Bytes::from(line)
}

fn list(kind: &str, items: Vec<Value>) -> Bytes {
    let list = json!({
        "kind": kind,
        "apiVersion": "v1",
        "metadata": {"resourceVersion": "1000"},
        "items": items,
    });
    Bytes::from(list.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_what_the_benchmarks_claim() {
        let small = pod_list().len();
        assert!((1500..3000).contains(&small), "{small}");
        let large = configmap_list(LARGE_LIST_BYTES).len();
        assert!(large >= LARGE_LIST_BYTES, "{large}");
        assert!(large < LARGE_LIST_BYTES + 16 * 1024, "{large}");
        let event: Value = serde_json::from_slice(&watch_event()).unwrap();
        assert_eq!(event["type"], "ADDED");
    }
}
