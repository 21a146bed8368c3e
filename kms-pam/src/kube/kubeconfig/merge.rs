//! `--merge`: add a session's cluster, user and context to an existing kubeconfig, select it,
//! and later take exactly those entries out again.
//!
//! Restoring prefers the original bytes: if nobody touched the file since the merge, it gets its
//! old contents back byte for byte (comments and formatting included). If it did change
//! (`kubectl config use-context`, another tool, another session), only our entries are removed
//! and `current-context` is put back only if it still names our context.

use std::fs;
use std::path::{Path, PathBuf};

use yaml_serde::{Mapping, Value};
use zeroize::Zeroizing;

use super::{
    read_optional, render, replace_with_mode, write_private, KubeconfigError, SessionKubeconfig,
};

const LISTS: [&str; 3] = ["clusters", "users", "contexts"];
const CURRENT_CONTEXT: &str = "current-context";

/// A session's entries merged into a kubeconfig; [`MergedKubeconfig::restore`] removes them.
#[derive(Debug)]
pub struct MergedKubeconfig {
    path: PathBuf,
    name: String,
    previous_context: Option<String>,
    /// The file before the merge; `None` when it did not exist.
    original: Option<Zeroizing<Vec<u8>>>,
    /// Its mode then, given back with its contents.
    original_mode: u32,
    /// The file as the merge left it.
    written: Zeroizing<String>,
}

impl MergedKubeconfig {
    /// Adds (or replaces) the cluster, user and context named `config.name` in the kubeconfig at
    /// `path` and makes that context current. The file is replaced with one of mode 0600 (it now
    /// holds a bearer token), under the rules of [`crate::fsutil::write_private`]: a symbolic
    /// link, or a file or directory another user controls, is refused. A file that is not a
    /// kubeconfig is left untouched.
    pub fn merge(path: &Path, config: &SessionKubeconfig) -> Result<Self, KubeconfigError> {
        let original = read_optional(path)?;
        let mut document = parse(path, original.as_deref().map(Vec::as_slice))?;
        let previous_context = document
            .get(CURRENT_CONTEXT)
            .and_then(Value::as_str)
            .filter(|context| !context.is_empty() && *context != config.name)
            .map(str::to_owned);
        let entries = [
            to_value(&config.cluster_entry())?,
            to_value(&config.user_entry())?,
            to_value(&config.context_entry())?,
        ];
        for (list, entry) in LISTS.into_iter().zip(entries) {
            let items = list_mut(&mut document, list).map_err(|reason| invalid(path, reason))?;
            items.retain(|item| !is_named(item, &config.name));
            items.push(entry);
        }
        document.insert(CURRENT_CONTEXT.into(), config.name.clone().into());
        let written = render(&document)?;
        let original_mode = original.as_ref().map_or(0o600, |_| mode_of(path));
        write_private(path, written.as_bytes())?;
        Ok(Self {
            path: path.to_owned(),
            name: config.name.clone(),
            previous_context,
            original,
            original_mode,
            written,
        })
    }

    /// The kubeconfig the entries were merged into.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the merged entries and restores the previous `current-context`.
    pub fn restore(self) -> Result<(), KubeconfigError> {
        let Some(now) = read_optional(&self.path)? else {
            // Someone removed the file: nothing of ours is left in it.
            return Ok(());
        };
        if now.as_slice() == self.written.as_bytes() {
            return match &self.original {
                Some(original) => replace_with_mode(&self.path, original, self.original_mode),
                None => fs::remove_file(&self.path)
                    .map_err(|e| KubeconfigError::io("remove", &self.path, e)),
            };
        }
        let mut document = parse(&self.path, Some(&now))?;
        for list in LISTS {
            if let Ok(items) = list_mut(&mut document, list) {
                items.retain(|item| !is_named(item, &self.name));
                if items.is_empty() {
                    document.remove(list);
                }
            }
        }
        let ours = document.get(CURRENT_CONTEXT).and_then(Value::as_str) == Some(&self.name);
        if ours {
            // The previous context may itself have been another session's, gone by now; leaving
            // kubectl pointed at a missing context would only trade one error for another.
            match self.previous_context.filter(|p| has_context(&document, p)) {
                Some(previous) => document.insert(CURRENT_CONTEXT.into(), previous.into()),
                None => document.remove(CURRENT_CONTEXT),
            };
        }
        // Other sessions' entries may still be in it: it stays 0600.
        write_private(&self.path, render(&document)?.as_bytes())
    }
}

/// The permission bits of an existing file (0600 if they cannot be read).
fn mode_of(path: &Path) -> u32 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::symlink_metadata(path).map_or(0o600, |m| m.permissions().mode() & 0o777)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        0o600
    }
}

/// The top-level mapping of a kubeconfig; an empty file is an empty kubeconfig.
fn parse(path: &Path, contents: Option<&[u8]>) -> Result<Mapping, KubeconfigError> {
    let value: Value = match contents {
        Some(bytes) => yaml_serde::from_slice(bytes).map_err(|e| invalid(path, e.to_string()))?,
        None => Value::Null,
    };
    match value {
        Value::Mapping(mapping) => Ok(mapping),
        Value::Null => {
            let mut mapping = Mapping::new();
            mapping.insert("apiVersion".into(), "v1".into());
            mapping.insert("kind".into(), "Config".into());
            Ok(mapping)
        }
        _ => Err(invalid(path, "the top level is not a mapping".to_owned())),
    }
}

/// The sequence under `key`, created when missing or null.
fn list_mut<'a>(document: &'a mut Mapping, key: &str) -> Result<&'a mut Vec<Value>, String> {
    let slot = document.entry(key.into()).or_insert(Value::Null);
    if slot.is_null() {
        *slot = Value::Sequence(Vec::new());
    }
    slot.as_sequence_mut()
        .ok_or_else(|| format!("`{key}` is not a list"))
}

fn has_context(document: &Mapping, name: &str) -> bool {
    document
        .get("contexts")
        .and_then(Value::as_sequence)
        .is_some_and(|contexts| contexts.iter().any(|c| is_named(c, name)))
}

fn is_named(item: &Value, name: &str) -> bool {
    item.get("name").and_then(Value::as_str) == Some(name)
}

fn to_value(entry: &impl serde::Serialize) -> Result<Value, KubeconfigError> {
    yaml_serde::to_value(entry).map_err(KubeconfigError::Render)
}

fn invalid(path: &Path, reason: String) -> KubeconfigError {
    KubeconfigError::Invalid {
        path: path.to_owned(),
        reason,
    }
}
