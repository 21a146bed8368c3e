//! Kubeconfig reading and merging: any bytes in the user's kubeconfig never panic, and merging a
//! session then removing it gives the user back what they had.

use std::fs;

use proptest::prelude::*;
use yaml_serde::{Mapping, Value};

use super::check;
use crate::kube::kubeconfig::{MergedKubeconfig, SessionKubeconfig};
use crate::secret::Secret;

fn session() -> SessionKubeconfig {
    SessionKubeconfig::new(
        "prod",
        "admin",
        "https://127.0.0.1:40123".to_owned(),
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".to_owned(),
        Secret::new("local-token"),
    )
}

/// YAML-ish text: real kubeconfig fragments, YAML syntax and anything at all.
fn contents() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just("apiVersion: v1\nkind: Config\n".to_owned()),
        Just("clusters:\n- name: dev\n  cluster: {server: 'https://dev:6443'}\n".to_owned()),
        Just("contexts: []\n".to_owned()),
        Just("users: ~\n".to_owned()),
        Just("current-context: kms-pam/prod/admin\n".to_owned()),
        Just("- name: kms-pam/prod/admin\n".to_owned()),
        Just("&a [*a]\n".to_owned()),
        Just("!!binary aGk=\n".to_owned()),
        Just("{".to_owned()),
        Just("? [a]\n: b\n".to_owned()),
        "[ -~\n\t]{0,40}",
        any::<String>(),
    ];
    prop_oneof![
        prop::collection::vec(piece, 0..8).prop_map(|p| p.concat().into_bytes()),
        prop::collection::vec(any::<u8>(), 0..200),
    ]
}

#[test]
fn any_bytes_in_the_users_kubeconfig_never_panic_and_restore_gives_them_back() {
    check("kubeconfig merge (bytes)", contents(), |original| {
        let dir = tempfile::tempdir().map_err(fail)?;
        let path = dir.path().join("config");
        fs::write(&path, &original).map_err(fail)?;
        match MergedKubeconfig::merge(&path, &session()) {
            Ok(merged) => {
                merged.restore().map_err(fail)?;
                prop_assert_eq!(fs::read(&path).map_err(fail)?, original);
            }
            // Refused: the file is left exactly as it was.
            Err(_) => prop_assert_eq!(fs::read(&path).map_err(fail)?, original),
        }
        Ok(())
    });
}

/// A kubeconfig with some clusters, users and contexts (never named like the session's) and
/// maybe a current context among them.
fn kubeconfig() -> impl Strategy<Value = Mapping> {
    let names = prop::collection::btree_set("[a-z][a-z0-9-]{0,8}", 0..4);
    (names, any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
        |(names, with_lists, with_current, with_extra)| {
            let mut doc = Mapping::new();
            doc.insert("apiVersion".into(), "v1".into());
            doc.insert("kind".into(), "Config".into());
            if with_extra {
                doc.insert("preferences".into(), Value::Mapping(Mapping::new()));
            }
            if with_lists && !names.is_empty() {
                for list in ["clusters", "users", "contexts"] {
                    let items = names
                        .iter()
                        .map(|n| {
                            let mut item = Mapping::new();
                            item.insert("name".into(), n.clone().into());
                            item.insert("extra".into(), format!("{list}-{n}").into());
                            Value::Mapping(item)
                        })
                        .collect();
                    doc.insert(list.into(), Value::Sequence(items));
                }
                if with_current {
                    let first = names.iter().next().cloned().unwrap_or_default();
                    doc.insert("current-context".into(), first.into());
                }
            }
            doc
        },
    )
}

#[test]
fn merge_then_restore_after_another_edit_removes_exactly_the_session() {
    check("kubeconfig merge (documents)", kubeconfig(), |original| {
        let dir = tempfile::tempdir().map_err(fail)?;
        let path = dir.path().join("config");
        let text = yaml_serde::to_string(&original).map_err(fail)?;
        fs::write(&path, &text).map_err(fail)?;
        let merged = MergedKubeconfig::merge(&path, &session()).map_err(fail)?;
        // Someone else touches the file meanwhile, so restore cannot just put the bytes back.
        let mut edited: Mapping =
            yaml_serde::from_slice(&fs::read(&path).map_err(fail)?).map_err(fail)?;
        edited.insert("x-edited".into(), true.into());
        fs::write(&path, yaml_serde::to_string(&edited).map_err(fail)?).map_err(fail)?;
        merged.restore().map_err(fail)?;

        let mut restored: Mapping =
            yaml_serde::from_slice(&fs::read(&path).map_err(fail)?).map_err(fail)?;
        prop_assert_eq!(restored.remove("x-edited"), Some(Value::Bool(true)));
        prop_assert_eq!(restored, original);
        Ok(())
    });
}

fn fail(e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}
