#!/usr/bin/env python3
"""Chart tests with the real Helm engine.

Renders the three Helm charts (kms-pam-gateway, kms-pam-server, kms-pam-relay) over a matrix of
values with Helm's own Go SDK (PyPI helm-python-sdk, which embeds it), validates every rendered
manifest strictly against the Kubernetes 1.30 schemas (PyPI kubernetes-validate), checks what
each case must render (the restricted Pod Security Standard, probes, the environment contract),
checks that bad values fail with the expected message, and compares the gateway's PVCs with the
golden file beside this script.

Run by tests/e2e/charts.rs with the venv that .ci/chart-venv makes; exits non-zero on any
failure, naming it.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any, Callable

import helm_python as helm
import kubernetes_validate
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CHARTS = {
    "gateway": ROOT / "kms-pam-gateway/deploy/helm/kms-pam-gateway",
    "server": ROOT / "kms-pam-cli/deploy/helm/kms-pam-server",
    "relay": ROOT / "kms-pam-cli/deploy/helm/kms-pam-relay",
}
GOLDEN = HERE / "golden/gateway-pvc.yaml"
KUBERNETES = "1.30.0"
RELEASE = "edge"
NAMESPACE = "kms-pam"

# The environment each binary is configured by (docs/deploy.md): nothing else may be set.
CONTRACT = {
    "gateway": {
        "KMS_PAM_URL", "KMS_PAM_KMS_CA", "KMS_PAM_NAME", "KMS_PAM_ADVERTISE", "KMS_PAM_RELAY",
        "KMS_PAM_ENROLL_TOKEN_FILE", "KMS_PAM_DATA_DIR", "KMS_PAM_LISTEN",
        "KMS_PAM_METRICS_LISTEN", "KMS_PAM_LOG_FORMAT", "POD_INDEX",
    },
    "server": {
        "KMS_PAM_LISTEN", "KMS_PAM_DATA_DIR", "KMS_PAM_DATABASE_FILE", "KMS_PAM_ROOT_KEY_FILE",
        "KMS_PAM_TLS_CERT", "KMS_PAM_TLS_KEY", "KMS_PAM_LOG_FORMAT",
    },
    "relay": {
        "KMS_PAM_LISTEN", "KMS_PAM_CERT_DIR", "KMS_PAM_NAME", "KMS_PAM_METRICS_LISTEN",
        "KMS_PAM_DRAIN_GRACE", "KMS_PAM_LOG_FORMAT",
    },
}

GATEWAY_BASE = {
    "kms": {"url": "https://kms.example.com"},
    "relays": ["relay-a.example.com:8443", "relay-b.example.com:8443"],
}
POSTGRES = {"database": {"existingSecret": "kms-db"}, "rootKey": {"existingSecret": "kms-keys"}}


class Failure(Exception):
    """A check that did not hold."""


def check(condition: bool, what: str) -> None:
    if not condition:
        raise Failure(what)


def merged(*parts: dict[str, Any]) -> dict[str, Any]:
    """Deep merge of values dictionaries, later ones winning."""
    out: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = merged(out[key], value)
            else:
                out[key] = copy.deepcopy(value)
    return out


def render(chart: str, values: dict[str, Any], **opts: Any) -> list[dict[str, Any]]:
    """Renders a chart as `helm install` would and returns its manifests (NOTES.txt aside)."""
    with helm.Chart.load(CHARTS[chart]) as loaded:
        rendered = loaded.render(
            values, name=RELEASE, namespace=NAMESPACE, is_install=not opts.get("upgrade"),
            is_upgrade=bool(opts.get("upgrade")), revision=2 if opts.get("upgrade") else 1,
        )
    docs = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            check("\n".join(text.split()).strip() != "", f"{path} is empty")
            continue
        for doc in yaml.safe_load_all(text):
            if doc is not None:
                doc["__path__"] = path
                docs.append(doc)
    return docs


def validate(docs: list[dict[str, Any]]) -> None:
    """Strict validation of every manifest against the Kubernetes schemas."""
    for doc in docs:
        body = {k: v for k, v in doc.items() if k != "__path__"}
        name = f"{doc['__path__']} ({doc.get('kind')} {doc.get('metadata', {}).get('name')})"
        try:
            used = kubernetes_validate.validate(body, KUBERNETES, strict=True)
        except kubernetes_validate.ValidationError as e:
            raise Failure(f"{name} is not a valid Kubernetes {KUBERNETES} object: {e.message} "
                          f"at {'.'.join(str(p) for p in e.path)}") from None
        except kubernetes_validate.SchemaNotFoundError as e:
            raise Failure(f"{name}: no Kubernetes {KUBERNETES} schema: {e.message}") from None
        check(used == KUBERNETES.rsplit(".", 1)[0], f"{name} was validated against Kubernetes {used}")
        check(doc["metadata"].get("namespace") == NAMESPACE, f"{name} is not in {NAMESPACE}")


def kinds(docs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        out.setdefault(doc["kind"], []).append(doc)
    return out


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = kinds(docs).get(kind, [])
    check(len(found) == 1, f"expected one {kind}, rendered {len(found)}")
    return found[0]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def mounted_file(pod: dict[str, Any], container: dict[str, Any], path: str) -> dict[str, Any]:
    """The volume a file path lies in, checked to be mounted read-only."""
    for mount in container["volumeMounts"]:
        if path.startswith(mount["mountPath"].rstrip("/") + "/"):
            volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
            check(mount.get("readOnly") is True, f"{mount['mountPath']} is mounted read-write")
            return volume
    raise Failure(f"{path} lies in no mounted volume")


def restricted(chart: str, workload: dict[str, Any], data_dir: str | None,
               values: dict[str, Any]) -> dict[str, Any]:
    """The restricted Pod Security Standard, and what every pod of ours shares."""
    extra = {e["name"] for e in values.get("extraEnv", [])}
    pod = workload["spec"]["template"]["spec"]
    ctx = pod["securityContext"]
    check(ctx.get("runAsNonRoot") is True, "pod: runAsNonRoot is not true")
    check(ctx.get("runAsUser") == 65532 and ctx.get("runAsGroup") == 65532, "pod: not 65532")
    check(ctx.get("seccompProfile") == {"type": "RuntimeDefault"}, "pod: seccomp")
    check(pod.get("automountServiceAccountToken") is False, "pod: service account token mounted")
    check("hostNetwork" not in pod and "hostPID" not in pod, "pod: host namespaces")
    containers = pod["containers"] + pod.get("initContainers", [])
    for c in containers:
        sc = c["securityContext"]
        check(sc.get("allowPrivilegeEscalation") is False, f"{c['name']}: privilege escalation")
        check(sc.get("capabilities") == {"drop": ["ALL"]}, f"{c['name']}: capabilities")
        check(sc.get("readOnlyRootFilesystem") is True, f"{c['name']}: writable root")
        check(sc.get("runAsNonRoot") is True, f"{c['name']}: runAsNonRoot")
        check(sc.get("seccompProfile") == {"type": "RuntimeDefault"}, f"{c['name']}: seccomp")
        check(not sc.get("privileged"), f"{c['name']}: privileged")
        check("resources" in c and c["resources"].get("limits"), f"{c['name']}: no limits")
        env = env_of(c)
        unknown = set(env) - CONTRACT[chart] - extra
        check(not unknown, f"{c['name']}: variables outside the contract: {sorted(unknown)}")
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        check("/tmp" in mounts, f"{c['name']}: no writable /tmp")
        if data_dir is not None:
            check(env.get("KMS_PAM_DATA_DIR") == f"{data_dir}/data", f"{c['name']}: data dir")
            check(mounts.get(data_dir) == "data", f"{c['name']}: {data_dir} is not the volume")
    for volume in pod.get("volumes", []):
        check("hostPath" not in volume, f"volume {volume['name']} is a hostPath")
    return pod["containers"][0]


def probes(container: dict[str, Any], port: str, scheme: str = "HTTP") -> None:
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = container[probe]["httpGet"]
        check(get["path"] == path and get["port"] == port, f"{probe}: {get}")
        check(get.get("scheme", "HTTP") == scheme, f"{probe}: scheme {get.get('scheme')}")
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    check(port in ports, f"no container port named {port}")


# --- the gateway ------------------------------------------------------------------------------

def gateway_pvcs(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """What the golden file pins: the PVCs' names, their keep policy and retention."""
    sts = one(docs, "StatefulSet")
    claims = sts["spec"]["volumeClaimTemplates"]
    check(len(claims) == 1, f"{len(claims)} volumeClaimTemplates")
    claim = claims[0]["metadata"]
    return {
        "statefulSet": sts["metadata"]["name"],
        "volumeClaimTemplate": {
            "name": claim["name"],
            "labels": claim.get("labels"),
            "annotations": claim.get("annotations"),
        },
        "persistentVolumeClaimRetentionPolicy": sts["spec"]["persistentVolumeClaimRetentionPolicy"],
        "pvcs": [f"{claim['name']}-{sts['metadata']['name']}-{i}"
                 for i in range(sts["spec"]["replicas"])],
    }


def gateway_common(docs: list[dict[str, Any]], values: dict[str, Any]) -> dict[str, Any]:
    sts = one(docs, "StatefulSet")
    pod = sts["spec"]["template"]["spec"]
    container = restricted("gateway", sts, "/var/lib/kms-pam-gateway", values)
    probes(container, "metrics")
    env = env_of(container)
    check(env["KMS_PAM_METRICS_LISTEN"] == "0.0.0.0:9100", "metrics listener")
    check(env["KMS_PAM_URL"] == values["kms"]["url"], "KMS_PAM_URL")
    check("KMS_PAM_ENROLL_TOKEN" not in env, "the token itself is in the environment")
    token_file = env["KMS_PAM_ENROLL_TOKEN_FILE"]
    volume = mounted_file(pod, container, token_file)
    check("secret" in volume, "the enrollment token is not from a Secret")
    one(docs, "PodDisruptionBudget")
    one(docs, "NetworkPolicy")
    # The PVCs never change, whatever the values: the golden file says what they are.
    pinned = yaml.safe_load(GOLDEN.read_text())
    got = gateway_pvcs(docs)
    expected = dict(pinned, pvcs=pinned["pvcs"][: sts["spec"]["replicas"]])
    check(got == expected, f"the gateway's PVCs changed:\n  got      {got}\n  expected {expected}")
    return {"sts": sts, "pod": pod, "container": container, "env": env, "volume": volume}


def egress_ports(policy: dict[str, Any]) -> set[int]:
    return {p["port"] for rule in policy["spec"]["egress"] for p in rule.get("ports", [])}


def gateway_defaults(docs, values):
    g = gateway_common(docs, values)
    check(set(kinds(docs)) == {"StatefulSet", "Secret", "ServiceAccount", "PodDisruptionBudget",
                               "NetworkPolicy"}, f"kinds {sorted(kinds(docs))}")
    secret = one(docs, "Secret")
    check(secret["stringData"] == {"token": "kmse_inline"}, "the chart's Secret")
    check(g["volume"]["secret"]["secretName"] == secret["metadata"]["name"], "token Secret")
    check(g["env"]["KMS_PAM_ENROLL_TOKEN_FILE"].endswith("/token"), "token file")
    check(g["env"]["KMS_PAM_NAME"] == "edge-kms-pam-gateway", "default name")
    check(g["sts"]["spec"]["replicas"] == 1, "replicas")


def gateway_existing_secret(docs, values):
    g = gateway_common(docs, values)
    check("Secret" not in kinds(docs), "a Secret rendered beside an existing one")
    check(g["volume"]["secret"]["secretName"] == "gw-enroll", "existing Secret not mounted")
    check(g["env"]["KMS_PAM_ENROLL_TOKEN_FILE"] == "/etc/kms-pam-gateway/enrollment/enroll",
          "the existing Secret's key")
    check(g["env"]["KMS_PAM_NAME"] == "gw-eu", "name")


def gateway_three_replicas(docs, values):
    g = gateway_common(docs, values)
    check(g["sts"]["spec"]["replicas"] == 3, "replicas")
    check(g["sts"]["spec"]["podManagementPolicy"] == "Parallel", "podManagementPolicy")
    index = g["env"]["POD_INDEX"]["fieldRef"]["fieldPath"]
    check(index == "metadata.labels['apps.kubernetes.io/pod-index']", "POD_INDEX")
    check(g["env"]["KMS_PAM_NAME"] == "gw-eu-$(POD_INDEX)", "per-replica names")
    check(g["env"]["KMS_PAM_ENROLL_TOKEN_FILE"].endswith("/token-$(POD_INDEX)"), "token files")
    names = [e["name"] for e in g["container"]["env"]]
    check(names.index("POD_INDEX") < names.index("KMS_PAM_NAME"), "POD_INDEX defined late")
    secret = one(docs, "Secret")
    check(secret["stringData"] == {"token-0": "t0", "token-1": "t1", "token-2": "t2"}, "tokens")


def gateway_relay_mode(docs, values):
    g = gateway_common(docs, values)
    check(g["env"]["KMS_PAM_RELAY"] == "relay-a.example.com:8443,relay-b.internal:9443", "relays")
    check("KMS_PAM_LISTEN" not in g["env"], "a tunnel listener in relay mode")
    check("Service" not in kinds(docs), "a Service in relay mode")
    check([p["name"] for p in g["container"]["ports"]] == ["metrics"], "ports in relay mode")
    policy = one(docs, "NetworkPolicy")
    check(egress_ports(policy) == {53, 443, 6443, 8443, 9443}, f"egress {egress_ports(policy)}")
    cidrs = {b["ipBlock"]["cidr"] for r in policy["spec"]["egress"] for b in r.get("to", [])
             if "ipBlock" in b}
    check(cidrs == {"10.0.0.1/32", "192.0.2.0/24", "198.51.100.7/32"}, f"egress cidrs {cidrs}")
    check([r["ports"][0]["port"] for r in policy["spec"]["ingress"]] == [9100], "ingress")
    mount = next(m for m in g["container"]["volumeMounts"] if m["name"] == "kms-ca")
    check(g["env"]["KMS_PAM_KMS_CA"] == mount["mountPath"] + "/ca.crt", "KMS CA path")
    check(any(v.get("configMap", {}).get("name") == "kms-ca" for v in g["pod"]["volumes"]), "CA")
    check(g["env"]["HTTPS_PROXY"] == "http://proxy.internal:3128", "extraEnv")
    check(any(v["name"] == "extra" for v in g["pod"]["volumes"]), "extraVolumes")
    check(any(m["name"] == "extra" for m in g["container"]["volumeMounts"]), "extraVolumeMounts")


def gateway_direct_mode(docs, values):
    g = gateway_common(docs, values)
    check("KMS_PAM_RELAY" not in g["env"], "relays in direct mode")
    check(g["env"]["KMS_PAM_LISTEN"] == "0.0.0.0:8443", "KMS_PAM_LISTEN")
    check(g["env"]["KMS_PAM_ADVERTISE"] == "gw.example.com:8443", "KMS_PAM_ADVERTISE")
    service = one(docs, "Service")
    check(service["spec"]["type"] == "LoadBalancer", "Service type")
    check(service["spec"]["ports"] == [{"name": "tunnel", "port": 8443, "targetPort": "tunnel",
                                        "protocol": "TCP"}], "Service ports")
    check({"name": "tunnel", "containerPort": 8443, "protocol": "TCP"} in g["container"]["ports"],
          "tunnel port")
    policy = one(docs, "NetworkPolicy")
    ingress = sorted(r["ports"][0]["port"] for r in policy["spec"]["ingress"])
    check(ingress == [8443, 9100], f"ingress {ingress}")


# --- the server and the relay -----------------------------------------------------------------

def server_sqlite(docs, values):
    deploy = one(docs, "Deployment")
    container = restricted("server", deploy, "/var/lib/kms-pam", values)
    probes(container, "api")
    check(container["args"] == ["server"], "args")
    env = env_of(container)
    check(env["KMS_PAM_LISTEN"] == "0.0.0.0:8080", "KMS_PAM_LISTEN")
    check("KMS_PAM_DATABASE_FILE" not in env and "KMS_PAM_ROOT_KEY_FILE" not in env, "SQLite")
    check(deploy["spec"]["replicas"] == 1, "replicas")
    check(deploy["spec"]["strategy"] == {"type": "Recreate"}, "SQLite must be Recreate")
    pvc = one(docs, "PersistentVolumeClaim")
    check(pvc["metadata"]["name"] == "edge-kms-pam-server-data", "PVC name")
    check(pvc["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}, "PVC keep")
    data = next(v for v in deploy["spec"]["template"]["spec"]["volumes"] if v["name"] == "data")
    check(data == {"name": "data", "persistentVolumeClaim": {"claimName": pvc["metadata"]["name"]}},
          "data volume")
    service = one(docs, "Service")
    check(service["spec"]["ports"][0]["port"] == 8080, "Service port")
    check("Ingress" not in kinds(docs), "an Ingress by default")


def server_postgres(docs, values):
    deploy = one(docs, "Deployment")
    pod = deploy["spec"]["template"]["spec"]
    container = restricted("server", deploy, "/var/lib/kms-pam", values)
    probes(container, "api", scheme="HTTPS")
    env = env_of(container)
    check(deploy["spec"]["replicas"] == 3, "replicas")
    check(deploy["spec"]["strategy"]["type"] == "RollingUpdate", "strategy")
    database = mounted_file(pod, container, env["KMS_PAM_DATABASE_FILE"])
    check(database["secret"]["secretName"] == "kms-db", "database Secret")
    check(env["KMS_PAM_DATABASE_FILE"].endswith("/url"), "database key")
    keys = mounted_file(pod, container, env["KMS_PAM_ROOT_KEY_FILE"])
    check(keys["secret"]["secretName"] == "kms-keys" and "items" not in keys["secret"],
          "the root key's Secret is not mounted whole (audit.key lives beside root.key)")
    check(env["KMS_PAM_ROOT_KEY_FILE"].endswith("/root.key"), "root key file")
    tls = mounted_file(pod, container, env["KMS_PAM_TLS_CERT"])
    check(tls["secret"]["secretName"] == "kms-serving", "TLS Secret")
    check("PersistentVolumeClaim" not in kinds(docs), "a PVC with PostgreSQL")
    check("emptyDir" in next(v for v in pod["volumes"] if v["name"] == "data"), "data emptyDir")
    ingress = one(docs, "Ingress")
    check(ingress["spec"]["ingressClassName"] == "nginx", "ingress class")
    check(ingress["spec"]["tls"] == [{"secretName": "kms-tls", "hosts": ["kms.example.com"]}],
          "ingress TLS")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    check(backend == {"name": "edge-kms-pam-server", "port": {"name": "api"}}, "backend")
    one(docs, "PodDisruptionBudget")


def relay_defaults(docs, values):
    deploy = one(docs, "Deployment")
    container = restricted("relay", deploy, None, values)
    probes(container, "metrics")
    check(container["args"] == ["relay", "serve"], "args")
    env = env_of(container)
    check(env["KMS_PAM_LISTEN"] == "0.0.0.0:8443", "KMS_PAM_LISTEN")
    check(env["KMS_PAM_METRICS_LISTEN"] == "0.0.0.0:9100", "KMS_PAM_METRICS_LISTEN")
    check(env["KMS_PAM_DRAIN_GRACE"] == "30", "KMS_PAM_DRAIN_GRACE")
    pod = deploy["spec"]["template"]["spec"]
    check(pod["terminationGracePeriodSeconds"] == 40, "grace period shorter than the drain")
    volume = mounted_file(pod, container, env["KMS_PAM_CERT_DIR"] + "/relay.key")
    check(volume["secret"]["secretName"] == "edge-kms-pam-relay-certificate", "certificate")
    check({i["key"] for i in volume["secret"]["items"]} == {"relay.crt", "relay.key",
                                                            "kms-ca.crt"}, "certificate keys")
    service = one(docs, "Service")
    check(service["spec"]["type"] == "LoadBalancer", "Service type")
    check(service["spec"]["ports"][0]["port"] == 8443, "Service port")
    one(docs, "PodDisruptionBudget")


CASES: list[tuple[str, str, dict[str, Any], Callable[..., None]]] = [
    ("gateway", "defaults + token", merged(GATEWAY_BASE, {"enrollment": {"token": "kmse_inline"}}),
     gateway_defaults),
    ("gateway", "existing Secret", merged(GATEWAY_BASE, {
        "name": "gw-eu",
        "enrollment": {"existingSecret": "gw-enroll", "existingSecretKey": "enroll"}}),
     gateway_existing_secret),
    ("gateway", "3 replicas", merged(GATEWAY_BASE, {
        "name": "gw-eu", "replicaCount": 3, "enrollment": {"tokens": ["t0", "t1", "t2"]}}),
     gateway_three_replicas),
    ("gateway", "relay mode", merged(GATEWAY_BASE, {
        "relays": ["relay-a.example.com:8443", "relay-b.internal:9443"],
        "enrollment": {"existingSecret": "gw-enroll"},
        "kms": {"ca": {"configMap": "kms-ca"}},
        "networkPolicy": {"kms": {"cidrs": ["10.0.0.1/32"]},
                          "apiServer": {"cidrs": ["192.0.2.0/24"]},
                          "relays": {"cidrs": ["198.51.100.7/32"]}},
        "extraEnv": [{"name": "HTTPS_PROXY", "value": "http://proxy.internal:3128"}],
        "extraVolumes": [{"name": "extra", "emptyDir": {}}],
        "extraVolumeMounts": [{"name": "extra", "mountPath": "/extra"}]}),
     gateway_relay_mode),
    ("gateway", "direct mode", {
        "kms": {"url": "https://kms.example.com"},
        "enrollment": {"token": "kmse_inline"},
        "direct": {"enabled": True, "advertise": "gw.example.com:8443",
                   "service": {"type": "LoadBalancer"}}},
     gateway_direct_mode),
    ("server", "SQLite, 1 replica", {}, server_sqlite),
    ("server", "PostgreSQL, 3 replicas, Ingress", merged(POSTGRES, {
        "replicaCount": 3, "tls": {"existingSecret": "kms-serving"},
        "ingress": {"enabled": True, "className": "nginx",
                    "tls": [{"secretName": "kms-tls", "hosts": ["kms.example.com"]}]}}),
     server_postgres),
    ("relay", "defaults", {}, relay_defaults),
]

GATEWAY_TOKEN = merged(GATEWAY_BASE, {"enrollment": {"token": "kmse_inline"}})
REFUSALS: list[tuple[str, str, dict[str, Any], str]] = [
    ("gateway", "no token and no existing Secret", GATEWAY_BASE,
     "no enrollment token: set enrollment.existingSecret"),
    ("gateway", "persistence disabled with a token",
     merged(GATEWAY_TOKEN, {"persistence": {"enabled": False}}),
     "persistence.enabled=false with an enrollment token: the token is one-time, so a restarted "
     "pod, with an empty data dir, could not enroll again"),
    ("gateway", "persistence disabled with an existing Secret",
     merged(GATEWAY_BASE, {"enrollment": {"existingSecret": "gw-enroll"},
                           "persistence": {"enabled": False}}),
     "persistence.enabled=false with an enrollment token"),
    ("gateway", "no relays and direct mode off", merged(GATEWAY_TOKEN, {"relays": []}),
     "no relays and direct mode off: CLIs could not reach the gateway"),
    ("gateway", "no KMS URL", {"relays": ["r.example.com:8443"], "enrollment": {"token": "t"}},
     "kms.url is required"),
    ("gateway", "direct mode without an address",
     merged(GATEWAY_TOKEN, {"direct": {"enabled": True}}),
     "direct.enabled=true needs direct.advertise"),
    ("gateway", "direct mode with 3 replicas", merged(GATEWAY_BASE, {
        "replicaCount": 3, "enrollment": {"tokens": ["a", "b", "c"]},
        "direct": {"enabled": True, "advertise": "gw.example.com:8443"}}),
     "direct mode with replicaCount > 1"),
    ("gateway", "one token for 3 replicas", merged(GATEWAY_TOKEN, {"replicaCount": 3}),
     "enrollment.token enrolls one gateway, but replicaCount is 3"),
    ("gateway", "2 tokens for 3 replicas",
     merged(GATEWAY_BASE, {"replicaCount": 3, "enrollment": {"tokens": ["a", "b"]}}),
     "enrollment.tokens has 2 token(s) for replicaCount 3"),
    ("gateway", "a typo in values", merged(GATEWAY_TOKEN, {"relay": ["r.example.com:8443"]}),
     "additional properties 'relay' not allowed"),
    ("gateway", "a relay without a port", merged(GATEWAY_TOKEN, {"relays": ["r.example.com"]}),
     "/relays/0"),
    ("gateway", "an unknown log format", merged(GATEWAY_TOKEN, {"logFormat": "xml"}),
     "/logFormat"),
    ("server", "3 replicas on SQLite", {"replicaCount": 3},
     "replicaCount 3 needs PostgreSQL: SQLite is one process"),
    ("server", "PostgreSQL without a root key", {"database": {"existingSecret": "kms-db"}},
     "PostgreSQL needs rootKey.existingSecret"),
    ("server", "SQLite without persistence", {"persistence": {"enabled": False}},
     "persistence.enabled=false with SQLite"),
    ("server", "a typo in values", {"databse": {"existingSecret": "kms-db"}},
     "additional properties 'databse' not allowed"),
    ("relay", "replicas", {"replicaCount": 2}, "additional properties 'replicaCount' not allowed"),
]


def run_case(chart: str, values: dict[str, Any], assertions: Callable[..., None]) -> None:
    docs = render(chart, values)
    validate(docs)
    assertions(docs, values)
    # An upgrade renders the same objects (the PVCs above all).
    upgraded = render(chart, values, upgrade=True)
    check([(d["kind"], d["metadata"]["name"]) for d in upgraded]
          == [(d["kind"], d["metadata"]["name"]) for d in docs], "an upgrade renders other objects")
    if chart == "gateway":
        check(gateway_pvcs(upgraded) == gateway_pvcs(docs), "an upgrade changes the PVCs")


def run_refusal(chart: str, values: dict[str, Any], expected: str) -> None:
    try:
        render(chart, values)
    except (helm.HelmRenderError, helm.HelmValuesError) as e:
        check(expected in str(e), f"refused, but with another message:\n  {e}\n  expected {expected!r}")
        return
    raise Failure(f"rendered; expected a refusal saying {expected!r}")


def lint(chart: str, values: dict[str, Any]) -> None:
    report = helm.lint(CHARTS[chart], values, strict=True, namespace=NAMESPACE,
                       kube_version=f"v{KUBERNETES}")
    # Severity 1 is information (such as "icon is recommended"); 2 and up are warnings and errors.
    bad = [m for m in report["messages"] if m["severity"] >= 2] + report.get("errors", [])
    check(not bad, f"helm lint: {bad}")


def main() -> int:
    print(f"Helm {helm.helm_sdk_version()} (helm-c {helm.helm_c_version()}), "
          f"kubernetes-validate against Kubernetes {KUBERNETES}")
    passed, failed = 0, 0

    def attempt(label: str, action: Callable[[], None]) -> None:
        nonlocal passed, failed
        try:
            action()
        except Failure as e:
            failed += 1
            print(f"FAIL {label}: {e}")
        except helm.HelmError as e:
            failed += 1
            print(f"FAIL {label}: Helm: {e}")
        else:
            passed += 1
            print(f"ok   {label}")

    for chart, case, values, assertions in CASES:
        attempt(f"{chart}: {case}", lambda: run_case(chart, values, assertions))
    for chart in CHARTS:
        values = next(v for c, _, v, _ in CASES if c == chart)
        attempt(f"{chart}: helm lint --strict", lambda: lint(chart, values))
    for chart, case, values, expected in REFUSALS:
        attempt(f"{chart}: refuses {case}", lambda: run_refusal(chart, values, expected))
    print(f"charts: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
