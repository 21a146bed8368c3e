//! Unit tests of the store.

use super::*;
use crate::apiserver::catalog::find;

fn store_with_namespace() -> Store {
    let store = Store::new();
    let namespaces = find("", "v1", "namespaces").unwrap();
    store.seed(namespaces, json!({"metadata": {"name": "default"}}));
    store
}

fn configmap(name: &str) -> Value {
    json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": name, "namespace": "default"}})
}

#[test]
fn create_get_update_delete() {
    let store = store_with_namespace();
    let cms = find("", "v1", "configmaps").unwrap();
    let created = store.create(cms, "default", configmap("a"), false).unwrap();
    assert!(!created.uid().is_empty());
    assert!(matches!(
        store.create(cms, "default", configmap("a"), false),
        Err(ApiError::AlreadyExists { .. })
    ));
    assert!(matches!(
        store.create(cms, "nope", configmap("b"), false),
        Err(ApiError::NotFound { .. })
    ));
    let updated = store
        .update(cms, "default", "a", false, |v| {
            let mut v = v.clone();
            v["data"] = json!({"k": "v"});
            Ok(v)
        })
        .unwrap();
    assert_eq!(updated.object["data"]["k"], "v");
    assert_eq!(updated.uid(), created.uid());
    store.delete(cms, "default", "a", false).unwrap();
    assert!(store.get(cms, "default", "a").is_none());
    assert!(store.delete(cms, "default", "a", false).is_err());
}

#[test]
fn dry_run_changes_nothing() {
    let store = store_with_namespace();
    let cms = find("", "v1", "configmaps").unwrap();
    let before = store.resource_version();
    store.create(cms, "default", configmap("a"), true).unwrap();
    assert!(store.get(cms, "default", "a").is_none());
    assert_eq!(store.resource_version(), before);
}

#[test]
fn watch_replays_history_after_a_version() {
    let store = store_with_namespace();
    let cms = find("", "v1", "configmaps").unwrap();
    let start = store.resource_version();
    store.create(cms, "default", configmap("a"), false).unwrap();
    store.delete(cms, "default", "a", false).unwrap();
    let from_start = store.watch(cms, Some("default"), Some(start));
    let events: Vec<EventType> = from_start.backlog.iter().map(|c| c.event).collect();
    assert_eq!(events, vec![EventType::Added, EventType::Deleted]);
    let fresh = store.watch(cms, None, None);
    assert!(fresh.backlog.is_empty());
    assert!(store.watch(cms, None, Some(1)).too_old.is_some());
}

#[test]
fn deleting_a_namespace_deletes_its_objects() {
    let store = store_with_namespace();
    let cms = find("", "v1", "configmaps").unwrap();
    let namespaces = find("", "v1", "namespaces").unwrap();
    store.create(cms, "default", configmap("a"), false).unwrap();
    store.delete(namespaces, "", "default", false).unwrap();
    assert!(store.list(cms, None).0.is_empty());
}
