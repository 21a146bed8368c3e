//! The cluster the double starts with: namespaces, an `nginx` Deployment with its ReplicaSet and
//! three Running pods, a `kubernetes` Service, the per-namespace `kube-root-ca.crt`, and the `big`
//! ConfigMap.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde_json::{json, Value};

use super::catalog::{self, Resource};
use super::clock::rfc3339;
use super::store::Store;

const TEMPLATE_HASH: &str = "7c5ddbdf54";
const NGINX_PODS: [(&str, &str); 3] = [
    ("2xkqn", "10.244.0.11"),
    ("8hvtw", "10.244.0.12"),
    ("qbt6m", "10.244.0.13"),
];
const NODE: &str = "double-node";

/// Names of the seeded pods in `default`, in the order `kubectl get pods` lists them.
pub fn nginx_pod_names() -> Vec<String> {
    NGINX_PODS
        .iter()
        .map(|(suffix, _)| format!("nginx-{TEMPLATE_HASH}-{suffix}"))
        .collect()
}

fn resource(group: &str, plural: &str) -> &'static Resource {
    catalog::RESOURCES
        .iter()
        .find(|r| r.is(group, plural))
        .unwrap_or(&catalog::RESOURCES[0])
}

fn meta(name: &str, namespace: Option<&str>, created: SystemTime) -> Value {
    let mut metadata = json!({
        "name": name,
        "uid": uuid::Uuid::new_v4().to_string(),
        "creationTimestamp": rfc3339(created),
    });
    if let Some(namespace) = namespace {
        metadata["namespace"] = json!(namespace);
    }
    metadata
}

/// Loads the seed objects; `big_object_bytes` = 0 leaves out the big ConfigMap.
pub(crate) fn load(store: &Store, ca_pem: &str, big_object_bytes: usize, started: SystemTime) {
    let two_days_ago = started - Duration::from_secs(2 * 86400);
    for name in ["default", "kube-system"] {
        let mut namespace = json!({"kind": "Namespace", "apiVersion": "v1",
            "metadata": meta(name, None, two_days_ago),
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}});
        namespace["metadata"]["labels"] = json!({"kubernetes.io/metadata.name": name});
        store.seed(resource("", "namespaces"), namespace);
        let root_ca = json!({"kind": "ConfigMap", "apiVersion": "v1",
            "metadata": meta("kube-root-ca.crt", Some(name), two_days_ago), "data": {"ca.crt": ca_pem}});
        store.seed(resource("", "configmaps"), root_ca);
    }
    let mut service = json!({"kind": "Service", "apiVersion": "v1",
        "metadata": meta("kubernetes", Some("default"), two_days_ago),
        "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1"],
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
                 "sessionAffinity": "None", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                 "internalTrafficPolicy": "Cluster"},
        "status": {"loadBalancer": {}}});
    service["metadata"]["labels"] = json!({"component": "apiserver", "provider": "kubernetes"});
    store.seed(resource("", "services"), service);
    load_nginx(store, started - Duration::from_secs(30 * 60));
    let coredns = pod(
        "coredns-668d6bf9bc-4xk7z",
        "kube-system",
        json!({"k8s-app": "kube-dns"}),
        "coredns",
        "registry.k8s.io/coredns/coredns:v1.11.3",
        "10.244.0.2",
        two_days_ago,
    );
    store.seed(resource("", "pods"), coredns);
    if big_object_bytes > 0 {
        let big = big_configmap(big_object_bytes, started - Duration::from_secs(10 * 60));
        store.seed_encoded(resource("", "configmaps"), big, encode_big);
    }
}

fn pod_template() -> Value {
    json!({
        "metadata": {"labels": {"app": "nginx"}},
        "spec": {
            "containers": [container("nginx", "nginx:1.27")],
            "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
            "securityContext": {}, "schedulerName": "default-scheduler"
        }
    })
}

fn container(name: &str, image: &str) -> Value {
    json!({"name": name, "image": image, "ports": [{"containerPort": 80, "protocol": "TCP"}],
           "resources": {}, "terminationMessagePath": "/dev/termination-log",
           "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"})
}

fn owner(kind: &str, api_version: &str, object: &Value) -> Value {
    json!([{"apiVersion": api_version, "kind": kind, "name": object["metadata"]["name"],
            "uid": object["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true}])
}

const REPLICAS_STATUS: &str =
    r#"{"observedGeneration": 1, "replicas": 3, "readyReplicas": 3, "availableReplicas": 3}"#;

fn replicas_status() -> Value {
    serde_json::from_str(REPLICAS_STATUS).unwrap_or_default()
}

fn hashed_labels() -> Value {
    json!({"app": "nginx", "pod-template-hash": TEMPLATE_HASH})
}

fn load_nginx(store: &Store, created: SystemTime) {
    let deployment = nginx_deployment(created);
    let replica_set = nginx_replica_set(&deployment, created);
    for ((_, ip), name) in NGINX_PODS.iter().zip(nginx_pod_names()) {
        let image = "nginx:1.27";
        let mut pod = pod(
            &name,
            "default",
            hashed_labels(),
            "nginx",
            image,
            ip,
            created,
        );
        pod["metadata"]["generateName"] = json!(format!("nginx-{TEMPLATE_HASH}-"));
        pod["metadata"]["ownerReferences"] = owner("ReplicaSet", "apps/v1", &replica_set);
        store.seed(resource("", "pods"), pod);
    }
    store.seed(resource("apps", "deployments"), deployment);
    store.seed(resource("apps", "replicasets"), replica_set);
}

fn nginx_deployment(created: SystemTime) -> Value {
    let mut deployment = json!({"kind": "Deployment", "apiVersion": "apps/v1",
        "metadata": meta("nginx", Some("default"), created),
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "nginx"}}, "template": pod_template(),
                 "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
                 "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600},
        "status": replicas_status()});
    deployment["metadata"]["generation"] = json!(1);
    deployment["metadata"]["labels"] = json!({"app": "nginx"});
    deployment["metadata"]["annotations"] = json!({"deployment.kubernetes.io/revision": "1"});
    let status = &mut deployment["status"];
    status["updatedReplicas"] = json!(3);
    status["conditions"] = json!([
        {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
         "message": "Deployment has minimum availability.",
         "lastUpdateTime": rfc3339(created), "lastTransitionTime": rfc3339(created)},
        {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
         "message": format!("ReplicaSet \"nginx-{TEMPLATE_HASH}\" has successfully progressed."),
         "lastUpdateTime": rfc3339(created), "lastTransitionTime": rfc3339(created)}
    ]);
    deployment
}

/// The Deployment's ReplicaSet: its template must equal the Deployment's but for the hash
/// label, or `kubectl describe deployment` does not recognise it as the new ReplicaSet.
fn nginx_replica_set(deployment: &Value, created: SystemTime) -> Value {
    let mut template = pod_template();
    template["metadata"]["labels"] = hashed_labels();
    let mut replica_set = json!({"kind": "ReplicaSet", "apiVersion": "apps/v1",
        "metadata": meta(&format!("nginx-{TEMPLATE_HASH}"), Some("default"), created),
        "spec": {"replicas": 3, "selector": {"matchLabels": hashed_labels()}, "template": template},
        "status": replicas_status()});
    replica_set["status"]["fullyLabeledReplicas"] = json!(3);
    let rs_meta = &mut replica_set["metadata"];
    rs_meta["generation"] = json!(1);
    rs_meta["labels"] = hashed_labels();
    rs_meta["annotations"] = json!({
        "deployment.kubernetes.io/revision": "1",
        "deployment.kubernetes.io/desired-replicas": "3",
        "deployment.kubernetes.io/max-replicas": "4"
    });
    rs_meta["ownerReferences"] = owner("Deployment", "apps/v1", deployment);
    replica_set
}

/// A Running pod with one ready container.
fn pod(
    name: &str,
    namespace: &str,
    labels: Value,
    container_name: &str,
    image: &str,
    ip: &str,
    created: SystemTime,
) -> Value {
    let started = rfc3339(created + Duration::from_secs(3));
    let condition = |kind: &str| json!({"type": kind, "status": "True", "lastProbeTime": null, "lastTransitionTime": started});
    let mut metadata = meta(name, Some(namespace), created);
    metadata["labels"] = labels;
    json!({
        "kind": "Pod", "apiVersion": "v1", "metadata": metadata,
        "spec": {"containers": [container(container_name, image)], "restartPolicy": "Always",
                 "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
                 "serviceAccountName": "default", "serviceAccount": "default", "nodeName": NODE,
                 "securityContext": {}, "schedulerName": "default-scheduler", "priority": 0,
                 "enableServiceLinks": true, "preemptionPolicy": "PreemptLowerPriority",
                 "tolerations": [
                    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]},
        "status": {
            "phase": "Running",
            "conditions": [condition("PodReadyToStartContainers"), condition("Initialized"),
                           condition("Ready"), condition("ContainersReady"), condition("PodScheduled")],
            "hostIP": "172.18.0.2", "hostIPs": [{"ip": "172.18.0.2"}],
            "podIP": ip, "podIPs": [{"ip": ip}], "startTime": rfc3339(created),
            "containerStatuses": [{
                "name": container_name, "state": {"running": {"startedAt": started}},
                "lastState": {}, "ready": true, "restartCount": 0, "image": format!("docker.io/library/{image}"),
                "imageID": format!("docker.io/library/{image}@sha256:{}", "0".repeat(64)),
                "containerID": format!("containerd://{}", uuid::Uuid::new_v4().simple()), "started": true
            }],
            "qosClass": "BestEffort"
        }
    })
}

/// Characters that JSON carries unescaped, so the payload's encoding is the payload itself.
const PATTERN: &str = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// A ConfigMap whose JSON encoding is about `total_bytes` long.
fn big_configmap(total_bytes: usize, created: SystemTime) -> Value {
    let mut object = json!({"kind": "ConfigMap", "apiVersion": "v1",
        "metadata": meta("big", Some("default"), created), "data": {"payload": ""}});
    // Room for the resourceVersion the store adds.
    object["metadata"]["resourceVersion"] = json!("1000000");
    let overhead = serde_json::to_vec(&object).map_or(0, |v| v.len());
    let payload_len = total_bytes.saturating_sub(overhead);
    // `repeat` copies by doubling; a per-character loop is slow in debug builds.
    let mut payload = PATTERN.repeat(payload_len / PATTERN.len());
    payload.push_str(&PATTERN[..payload_len % PATTERN.len()]);
    object["data"]["payload"] = json!(payload);
    object
}

/// Encodes the big ConfigMap by splicing its escape-free payload into the encoding of the rest:
/// serializing 20 MiB through serde_json takes most of a second in debug builds.
fn encode_big(object: &Value) -> Bytes {
    let payload = object["data"]["payload"].as_str().unwrap_or_default();
    let mut skeleton = object.clone();
    skeleton["data"]["payload"] = json!("");
    let skeleton = serde_json::to_vec(&skeleton).unwrap_or_default();
    let marker: &[u8] = b"\"payload\":\"";
    let Some(at) = skeleton.windows(marker.len()).position(|w| w == marker) else {
        return super::store::encode(object);
    };
    let split = at + marker.len();
    let mut json = Vec::with_capacity(skeleton.len() + payload.len());
    json.extend_from_slice(&skeleton[..split]);
    json.extend_from_slice(payload.as_bytes());
    json.extend_from_slice(&skeleton[split..]);
    Bytes::from(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_configmap_has_the_requested_size_and_a_faithful_encoding() {
        let object = big_configmap(1 << 20, SystemTime::now());
        let spliced = encode_big(&object);
        assert_eq!(spliced, crate::apiserver::store::encode(&object));
        assert!(spliced.len().abs_diff(1 << 20) < 16, "{}", spliced.len());
    }

    #[test]
    fn seeds_nginx_and_namespaces() {
        let store = Store::new();
        load(&store, "CA", 0, SystemTime::now());
        let pods = resource("", "pods");
        assert_eq!(store.list(pods, Some("default")).0.len(), 3);
        assert!(store.get(pods, "default", &nginx_pod_names()[0]).is_some());
        assert_eq!(store.list(resource("", "namespaces"), None).0.len(), 2);
        assert!(store
            .get(resource("", "configmaps"), "default", "big")
            .is_none());
    }
}
