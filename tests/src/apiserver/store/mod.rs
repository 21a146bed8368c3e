//! The double's "etcd": objects keyed by resource, namespace and name, one resourceVersion
//! counter, a history for watches that resume from a version, and a live change feed.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::broadcast;

pub(crate) use feed::{Change, EventType};

use super::catalog::{self, Resource};
use super::clock;
use super::response::ApiError;

/// How many past changes a watch can resume from before it gets `410 Expired`.
const HISTORY: usize = 4096;

type Key = (&'static str, &'static str, String, String);

/// An object with its serialized form, computed once per write and shared by every reader.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub(crate) object: Arc<Value>,
    pub(crate) json: Bytes,
}

impl Stored {
    fn new(object: Value) -> Self {
        Self::encoded(object, encode)
    }

    /// With a caller-made encoding, for objects too big to run through the serializer quickly.
    fn encoded(object: Value, encoder: impl FnOnce(&Value) -> Bytes) -> Self {
        let json = encoder(&object);
        Self {
            object: Arc::new(object),
            json,
        }
    }

    pub(crate) fn name(&self) -> &str {
        self.object["metadata"]["name"].as_str().unwrap_or_default()
    }

    pub(crate) fn uid(&self) -> &str {
        self.object["metadata"]["uid"].as_str().unwrap_or_default()
    }
}

/// The standard JSON encoding of an object.
pub(crate) fn encode(object: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(object).unwrap_or_default())
}

#[derive(Debug)]
struct Inner {
    rv: u64,
    objects: BTreeMap<Key, Stored>,
    history: VecDeque<Change>,
}

fn key(resource: &'static Resource, namespace: &str, name: &str) -> Key {
    let namespace = if resource.namespaced { namespace } else { "" };
    (
        resource.group,
        resource.plural,
        namespace.to_owned(),
        name.to_owned(),
    )
}

fn not_found(resource: &Resource, name: &str) -> ApiError {
    ApiError::NotFound {
        resource: resource.plural.to_owned(),
        group: resource.group.to_owned(),
        name: name.to_owned(),
    }
}

impl Inner {
    /// Creating in a namespace that does not exist is a `404` for the namespace.
    fn require_namespace(&self, namespace: &str) -> Result<(), ApiError> {
        let namespaces = catalog::find("", "v1", "namespaces");
        if namespaces.is_some_and(|ns| self.objects.contains_key(&key(ns, "", namespace))) {
            return Ok(());
        }
        Err(ApiError::NotFound {
            resource: "namespaces".into(),
            group: String::new(),
            name: namespace.to_owned(),
        })
    }
}

#[derive(Debug)]
pub(crate) struct Store {
    inner: Mutex<Inner>,
    changes: broadcast::Sender<Change>,
}

impl Store {
    pub(crate) fn new() -> Self {
        let inner = Inner {
            rv: 1000,
            objects: BTreeMap::new(),
            history: VecDeque::new(),
        };
        Self {
            inner: Mutex::new(inner),
            changes: broadcast::channel(1024).0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panicking test thread must not take the store down with it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    /// Loads a seed object as is (timestamps and uid kept). It enters the history too, so a
    /// watch from any version the double ever reported can be resumed.
    pub(crate) fn seed(&self, resource: &'static Resource, object: Value) {
        self.seed_encoded(resource, object, encode);
    }

    /// [`Store::seed`] with a caller-made encoding of the final object.
    pub(crate) fn seed_encoded(
        &self,
        resource: &'static Resource,
        mut object: Value,
        encoder: impl FnOnce(&Value) -> Bytes,
    ) {
        let mut inner = self.lock();
        inner.rv += 1;
        object["metadata"]["resourceVersion"] = json!(inner.rv.to_string());
        let stored = Stored::encoded(object, encoder);
        let namespace = stored.object["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        inner
            .objects
            .insert(key(resource, &namespace, stored.name()), stored.clone());
        self.commit(
            &mut inner,
            resource,
            &namespace,
            EventType::Added,
            stored,
            None,
        );
    }

    pub(crate) fn get(
        &self,
        resource: &'static Resource,
        namespace: &str,
        name: &str,
    ) -> Option<Stored> {
        self.lock()
            .objects
            .get(&key(resource, namespace, name))
            .cloned()
    }

    /// Objects of `resource` (in `namespace`, or everywhere), ordered by namespace then name,
    /// with the store's current resourceVersion.
    pub(crate) fn list(
        &self,
        resource: &'static Resource,
        namespace: Option<&str>,
    ) -> (Vec<Stored>, u64) {
        let inner = self.lock();
        let items = inner
            .objects
            .iter()
            .filter(|((group, plural, ns, _), _)| {
                resource.is(group, plural) && namespace.is_none_or(|wanted| ns == wanted)
            })
            .map(|(_, stored)| stored.clone())
            .collect();
        (items, inner.rv)
    }

    /// Stores a new object, assigning uid, creationTimestamp and resourceVersion.
    pub(crate) fn create(
        &self,
        resource: &'static Resource,
        namespace: &str,
        mut object: Value,
        dry_run: bool,
    ) -> Result<Stored, ApiError> {
        let mut inner = self.lock();
        if resource.namespaced {
            inner.require_namespace(namespace)?;
        }
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let key = key(resource, namespace, &name);
        if inner.objects.contains_key(&key) {
            return Err(ApiError::AlreadyExists {
                resource: resource.plural.to_owned(),
                group: resource.group.to_owned(),
                name,
            });
        }
        let metadata = &mut object["metadata"];
        metadata["uid"] = json!(uuid::Uuid::new_v4().to_string());
        metadata["creationTimestamp"] = json!(clock::now_rfc3339());
        metadata["resourceVersion"] = json!((inner.rv + 1).to_string());
        if dry_run {
            return Ok(Stored::new(object));
        }
        inner.rv += 1;
        let stored = Stored::new(object);
        inner.objects.insert(key, stored.clone());
        self.commit(
            &mut inner,
            resource,
            namespace,
            EventType::Added,
            stored.clone(),
            None,
        );
        Ok(stored)
    }

    /// Replaces an object with `change(current)`, keeping its identity and bumping its version.
    pub(crate) fn update(
        &self,
        resource: &'static Resource,
        namespace: &str,
        name: &str,
        dry_run: bool,
        change: impl FnOnce(&Value) -> Result<Value, ApiError>,
    ) -> Result<Stored, ApiError> {
        let mut inner = self.lock();
        let key = key(resource, namespace, name);
        let current = inner
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| not_found(resource, name))?;
        let mut next = change(&current.object)?;
        for field in ["name", "namespace", "uid", "creationTimestamp"] {
            next["metadata"][field] = current.object["metadata"][field].clone();
        }
        if next["metadata"]["namespace"].is_null() {
            if let Some(metadata) = next["metadata"].as_object_mut() {
                metadata.remove("namespace");
            }
        }
        next["metadata"]["resourceVersion"] = json!((inner.rv + 1).to_string());
        if dry_run {
            return Ok(Stored::new(next));
        }
        inner.rv += 1;
        let stored = Stored::new(next);
        inner.objects.insert(key, stored.clone());
        let previous = Some(current.object.clone());
        self.commit(
            &mut inner,
            resource,
            namespace,
            EventType::Modified,
            stored.clone(),
            previous,
        );
        Ok(stored)
    }

    /// Removes an object; deleting a namespace removes everything in it too.
    pub(crate) fn delete(
        &self,
        resource: &'static Resource,
        namespace: &str,
        name: &str,
        dry_run: bool,
    ) -> Result<Stored, ApiError> {
        let mut inner = self.lock();
        let key = key(resource, namespace, name);
        let current = inner
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| not_found(resource, name))?;
        if dry_run {
            return Ok(current);
        }
        let mut doomed = vec![(resource, key)];
        if resource.is("", "namespaces") {
            for k in inner.objects.keys().filter(|(_, _, ns, _)| ns == name) {
                if let Some(r) = catalog::RESOURCES.iter().find(|r| r.is(k.0, k.1)) {
                    doomed.insert(0, (r, k.clone()));
                }
            }
        }
        let mut deleted = current;
        for (r, k) in doomed {
            if let Some(old) = inner.objects.remove(&k) {
                inner.rv += 1;
                let mut object = (*old.object).clone();
                object["metadata"]["resourceVersion"] = json!(inner.rv.to_string());
                let stored = Stored::new(object);
                self.commit(
                    &mut inner,
                    r,
                    &k.2,
                    EventType::Deleted,
                    stored.clone(),
                    Some(old.object),
                );
                deleted = stored;
            }
        }
        Ok(deleted)
    }

    fn commit(
        &self,
        inner: &mut Inner,
        resource: &'static Resource,
        namespace: &str,
        event: EventType,
        current: Stored,
        previous: Option<Arc<Value>>,
    ) {
        let change = Change {
            event,
            resource,
            namespace: namespace.to_owned(),
            rv: inner.rv,
            current,
            previous,
        };
        if inner.history.len() == HISTORY {
            inner.history.pop_front();
        }
        inner.history.push_back(change.clone());
        // No receivers is normal: nobody is watching.
        let _ = self.changes.send(change);
    }
}

mod feed;
#[cfg(test)]
mod tests;
