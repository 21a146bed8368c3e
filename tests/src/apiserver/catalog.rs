//! The resources the double serves: one table that discovery, routing and storage all read, so
//! what kubectl discovers is exactly what answers.

/// A subresource such as `pods/log` or `deployments/scale`.
#[derive(Debug)]
pub(crate) struct Subresource {
    pub(crate) name: &'static str,
    /// Group, version and kind of what the subresource returns.
    pub(crate) group: &'static str,
    pub(crate) version: &'static str,
    pub(crate) kind: &'static str,
    pub(crate) verbs: &'static [&'static str],
}

/// One served resource type.
#[derive(Debug)]
pub(crate) struct Resource {
    pub(crate) group: &'static str,
    pub(crate) version: &'static str,
    pub(crate) plural: &'static str,
    pub(crate) singular: &'static str,
    pub(crate) kind: &'static str,
    pub(crate) namespaced: bool,
    pub(crate) short_names: &'static [&'static str],
    pub(crate) categories: &'static [&'static str],
    pub(crate) verbs: &'static [&'static str],
    pub(crate) subresources: &'static [Subresource],
}

impl Resource {
    /// `v1` for the core group, `apps/v1` otherwise.
    pub(crate) fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub(crate) fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    pub(crate) fn subresource(&self, name: &str) -> Option<&'static Subresource> {
        self.subresources.iter().find(|s| s.name == name)
    }

    pub(crate) fn is(&self, group: &str, plural: &str) -> bool {
        self.group == group && self.plural == plural
    }
}

const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const NAMESPACE_VERBS: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];
const STATUS_VERBS: &[&str] = &["get", "patch", "update"];
const CONNECT_VERBS: &[&str] = &["create", "get"];

const fn sub(
    name: &'static str,
    group: &'static str,
    kind: &'static str,
    verbs: &'static [&'static str],
) -> Subresource {
    let version = "v1";
    Subresource {
        name,
        group,
        version,
        kind,
        verbs,
    }
}

/// Every resource, core group first, in the order discovery lists them.
pub(crate) static RESOURCES: &[Resource] = &[
    Resource {
        group: "",
        version: "v1",
        plural: "configmaps",
        singular: "configmap",
        kind: "ConfigMap",
        namespaced: true,
        short_names: &["cm"],
        categories: &[],
        verbs: ALL_VERBS,
        subresources: &[],
    },
    Resource {
        group: "",
        version: "v1",
        plural: "events",
        singular: "event",
        kind: "Event",
        namespaced: true,
        short_names: &["ev"],
        categories: &[],
        verbs: ALL_VERBS,
        subresources: &[],
    },
    Resource {
        group: "",
        version: "v1",
        plural: "namespaces",
        singular: "namespace",
        kind: "Namespace",
        namespaced: false,
        short_names: &["ns"],
        categories: &[],
        verbs: NAMESPACE_VERBS,
        subresources: &[sub("status", "", "Namespace", STATUS_VERBS)],
    },
    Resource {
        group: "",
        version: "v1",
        plural: "pods",
        singular: "pod",
        kind: "Pod",
        namespaced: true,
        short_names: &["po"],
        categories: &["all"],
        verbs: ALL_VERBS,
        subresources: &[
            sub("attach", "", "PodAttachOptions", CONNECT_VERBS),
            sub("exec", "", "PodExecOptions", CONNECT_VERBS),
            sub("log", "", "Pod", &["get"]),
            sub("portforward", "", "PodPortForwardOptions", CONNECT_VERBS),
            sub("status", "", "Pod", STATUS_VERBS),
        ],
    },
    Resource {
        group: "",
        version: "v1",
        plural: "secrets",
        singular: "secret",
        kind: "Secret",
        namespaced: true,
        short_names: &[],
        categories: &[],
        verbs: ALL_VERBS,
        subresources: &[],
    },
    Resource {
        group: "",
        version: "v1",
        plural: "services",
        singular: "service",
        kind: "Service",
        namespaced: true,
        short_names: &["svc"],
        categories: &["all"],
        verbs: ALL_VERBS,
        subresources: &[sub("status", "", "Service", STATUS_VERBS)],
    },
    Resource {
        group: "apps",
        version: "v1",
        plural: "deployments",
        singular: "deployment",
        kind: "Deployment",
        namespaced: true,
        short_names: &["deploy"],
        categories: &["all"],
        verbs: ALL_VERBS,
        subresources: &[
            sub("scale", "autoscaling", "Scale", STATUS_VERBS),
            sub("status", "apps", "Deployment", STATUS_VERBS),
        ],
    },
    Resource {
        group: "apps",
        version: "v1",
        plural: "replicasets",
        singular: "replicaset",
        kind: "ReplicaSet",
        namespaced: true,
        short_names: &["rs"],
        categories: &["all"],
        verbs: ALL_VERBS,
        subresources: &[
            sub("scale", "autoscaling", "Scale", STATUS_VERBS),
            sub("status", "apps", "ReplicaSet", STATUS_VERBS),
        ],
    },
];

/// API groups besides the core one, each served at version `v1` only.
pub(crate) const GROUPS: &[&str] = &["apps"];

/// The resource called `plural` in `group`/`version`.
pub(crate) fn find(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resources of one group version (empty for an unknown one).
pub(crate) fn in_group_version<'a>(
    group: &'a str,
    version: &'a str,
) -> impl Iterator<Item = &'static Resource> + 'a {
    RESOURCES
        .iter()
        .filter(move |r| r.group == group && r.version == version)
}

/// Whether `group`/`version` is served at all.
pub(crate) fn serves(group: &str, version: &str) -> bool {
    in_group_version(group, version).next().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_resources_and_subresources() {
        let pods = find("", "v1", "pods").unwrap();
        assert_eq!(pods.kind, "Pod");
        assert!(pods.subresource("exec").is_some());
        assert!(pods.subresource("scale").is_none());
        assert_eq!(
            find("apps", "v1", "deployments").unwrap().api_version(),
            "apps/v1"
        );
        assert!(find("", "v1", "deployments").is_none());
        assert!(serves("apps", "v1") && !serves("apps", "v2"));
    }

    #[test]
    fn every_group_has_resources() {
        for group in GROUPS {
            assert!(serves(group, "v1"), "{group}");
        }
    }
}
