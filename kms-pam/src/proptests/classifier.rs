//! `RequestInfo::classify`: any method, path and query; and what a well-formed path must yield.

use http::Method;
use proptest::prelude::*;

use super::check;
use crate::kube::{RequestInfo, Verb};

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        Just(Method::GET),
        Just(Method::POST),
        Just(Method::PUT),
        Just(Method::PATCH),
        Just(Method::DELETE),
        Just(Method::HEAD),
        Just(Method::OPTIONS),
        Just(Method::CONNECT),
        "[A-Z]{1,12}".prop_map(|m| Method::from_bytes(m.as_bytes()).unwrap_or(Method::GET)),
    ]
}

/// Paths built from the pieces the classifier looks for, with odd ones mixed in.
fn path() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        Just("api".to_owned()),
        Just("apis".to_owned()),
        Just("v1".to_owned()),
        Just("namespaces".to_owned()),
        Just("watch".to_owned()),
        Just("proxy".to_owned()),
        Just("pods".to_owned()),
        Just("exec".to_owned()),
        Just("log".to_owned()),
        Just("status".to_owned()),
        Just(".".to_owned()),
        Just("..".to_owned()),
        Just(String::new()),
        "%[0-9a-fA-FgG]{0,2}",
        "[a-z0-9.-]{1,12}",
        any::<String>(),
    ];
    prop::collection::vec(segment, 0..12).prop_map(|segments| format!("/{}", segments.join("/")))
}

fn query() -> impl Strategy<Value = Option<String>> {
    let pair = prop_oneof![
        Just("watch=true".to_owned()),
        Just("watch=1".to_owned()),
        Just("follow=true".to_owned()),
        "fieldSelector=metadata.name%3D[a-z%=,!]{0,12}",
        "command=[a-z%]{0,8}",
        any::<String>(),
    ];
    proptest::option::of(prop::collection::vec(pair, 0..5).prop_map(|p| p.join("&")))
}

#[test]
fn classify_never_panics_and_is_consistent() {
    let input = (method(), prop_oneof![path(), any::<String>()], query());
    check("classifier", input, |(method, path, query)| {
        let info = RequestInfo::classify(&method, &path, query.as_deref());
        prop_assert_eq!(
            &info,
            &RequestInfo::classify(&method, &path, query.as_deref())
        );
        let _ = info.stream_kind(query.as_deref());
        let _ = crate::kube::is_discovery_path(&path);
        if info.is_resource_request {
            prop_assert!(info.api_prefix == "api" || info.api_prefix == "apis");
            prop_assert!(!info.api_version.is_empty());
            prop_assert!(info.resource.as_deref().is_some_and(|r| !r.is_empty()));
        } else {
            prop_assert!(info.api_prefix.is_empty() && info.resource.is_none());
            prop_assert!(info.namespace.is_none() && info.name.is_none());
        }
        Ok(())
    });
}

/// A name the API server accepts in a path, and not one of the words the rules look for.
fn name() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9-]{0,14}[a-z0-9])?".prop_filter("a keyword", |n| {
        !matches!(
            n.as_str(),
            "namespaces" | "watch" | "proxy" | "api" | "apis" | "status" | "finalize"
        )
    })
}

/// Percent-encodes every byte of a segment: the classifier must see through it.
fn encode_all(segment: &str) -> String {
    segment.bytes().map(|b| format!("%{b:02X}")).collect()
}

#[test]
fn a_resource_path_yields_its_parts_even_fully_percent_encoded() {
    let input = (name(), name(), name(), name(), any::<bool>(), any::<bool>());
    check(
        "classifier round trip",
        input,
        |(group, namespace, resource, object, grouped, encoded)| {
            let prefix = if grouped {
                format!("/apis/{group}.example.com/v1")
            } else {
                "/api/v1".to_owned()
            };
            let parts = ["namespaces", &namespace, &resource, &object];
            let rest: Vec<String> = parts
                .iter()
                .map(|p| {
                    if encoded {
                        encode_all(p)
                    } else {
                        (*p).to_owned()
                    }
                })
                .collect();
            let path = format!("{prefix}/{}", rest.join("/"));
            let info = RequestInfo::classify(&Method::GET, &path, None);
            prop_assert!(info.is_resource_request, "{path}");
            prop_assert_eq!(info.verb, Verb::Get);
            prop_assert_eq!(info.namespace.as_deref(), Some(namespace.as_str()));
            prop_assert_eq!(info.resource.as_deref(), Some(resource.as_str()));
            prop_assert_eq!(info.name.as_deref(), Some(object.as_str()));
            let expected_group = if grouped {
                format!("{group}.example.com")
            } else {
                String::new()
            };
            prop_assert_eq!(&info.api_group, &expected_group);

            // The collection, watched: a watch of that resource in that namespace.
            let collection = format!("{prefix}/namespaces/{namespace}/{resource}");
            let watch = RequestInfo::classify(&Method::GET, &collection, Some("watch=true"));
            prop_assert_eq!(watch.verb, Verb::Watch);
            prop_assert_eq!(watch.resource.as_deref(), Some(resource.as_str()));
            prop_assert_eq!(watch.name, None);
            Ok(())
        },
    );
}
