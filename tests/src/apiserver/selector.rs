//! `labelSelector` and `fieldSelector` query parameters, parsed and matched like the real server.

use serde_json::Value;

use super::response::ApiError;

#[derive(Debug, Clone, PartialEq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// The two selectors of a list or watch request; an empty filter matches everything.
#[derive(Debug, Clone, Default)]
pub(crate) struct Filter {
    labels: Vec<Requirement>,
    fields: Vec<Requirement>,
}

/// Field labels every resource supports, on top of its own.
const COMMON_FIELDS: &[&str] = &["metadata.name", "metadata.namespace"];

/// Extra field labels per resource plural, from the real registries.
fn resource_fields(plural: &str) -> &'static [&'static str] {
    match plural {
        "pods" => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        "events" => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        "namespaces" => &["status.phase"],
        "secrets" => &["type"],
        "replicasets" => &["status.replicas"],
        _ => &[],
    }
}

impl Filter {
    /// Parses both selectors; `plural` decides which field labels are allowed.
    pub(crate) fn parse(
        plural: &str,
        labels: Option<&str>,
        fields: Option<&str>,
    ) -> Result<Self, ApiError> {
        let labels = match labels {
            Some(text) => parse_labels(text)?,
            None => Vec::new(),
        };
        let fields = match fields {
            Some(text) => parse_fields(plural, text)?,
            None => Vec::new(),
        };
        Ok(Self { labels, fields })
    }

    pub(crate) fn matches(&self, object: &Value) -> bool {
        let labels = &object["metadata"]["labels"];
        let label = |key: &str| labels.get(key).and_then(Value::as_str);
        let field = |key: &str| Some(field_value(object, key));
        self.labels.iter().all(|r| r.holds(label)) && self.fields.iter().all(|r| r.holds(field))
    }
}

impl Requirement {
    fn holds<'a>(&self, lookup: impl Fn(&str) -> Option<&'a str>) -> bool {
        match self {
            Self::Equals(key, value) => lookup(key) == Some(value.as_str()),
            Self::NotEquals(key, value) => lookup(key) != Some(value.as_str()),
            Self::In(key, values) => lookup(key).is_some_and(|v| values.iter().any(|w| w == v)),
            Self::NotIn(key, values) => !lookup(key).is_some_and(|v| values.iter().any(|w| w == v)),
            Self::Exists(key) => lookup(key).is_some(),
            Self::NotExists(key) => lookup(key).is_none(),
        }
    }
}

/// A field's value as text; missing fields read as `""`, as in the real field sets.
fn field_value<'a>(object: &'a Value, path: &str) -> &'a str {
    let path = if path == "source" {
        "source.component"
    } else {
        path
    };
    let mut current = object;
    for part in path.split('.') {
        current = &current[part];
    }
    match current {
        Value::String(s) => s,
        Value::Bool(true) => "true",
        Value::Bool(false) => "false",
        _ => "",
    }
}

/// Splits on commas outside parentheses, so `env in (a,b),tier=web` has two terms.
fn terms(text: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                terms.push(text[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(text[start..].trim());
    terms.into_iter().filter(|t| !t.is_empty()).collect()
}

fn parse_labels(text: &str) -> Result<Vec<Requirement>, ApiError> {
    terms(text).into_iter().map(parse_label_term).collect()
}

fn parse_label_term(term: &str) -> Result<Requirement, ApiError> {
    let invalid = || ApiError::bad_request(format!("unable to parse requirement: {term:?}"));
    if let Some(key) = term.strip_prefix('!') {
        return Ok(Requirement::NotExists(
            checked_key(key.trim()).ok_or_else(invalid)?,
        ));
    }
    for (operator, negated) in [(" notin ", true), (" in ", false)] {
        if let Some((key, set)) = term.split_once(operator) {
            let key = checked_key(key.trim()).ok_or_else(invalid)?;
            let set = set.trim();
            let inner = set
                .strip_prefix('(')
                .and_then(|s| s.strip_suffix(')'))
                .ok_or_else(invalid)?;
            let values = inner.split(',').map(|v| v.trim().to_owned()).collect();
            return Ok(if negated {
                Requirement::NotIn(key, values)
            } else {
                Requirement::In(key, values)
            });
        }
    }
    match equality(term) {
        Some((key, value, negated)) => {
            let key = checked_key(key).ok_or_else(invalid)?;
            Ok(if negated {
                Requirement::NotEquals(key, value)
            } else {
                Requirement::Equals(key, value)
            })
        }
        None => Ok(Requirement::Exists(checked_key(term).ok_or_else(invalid)?)),
    }
}

fn parse_fields(plural: &str, text: &str) -> Result<Vec<Requirement>, ApiError> {
    terms(text)
        .into_iter()
        .map(|term| {
            let (key, value, negated) = equality(term).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "invalid selector: '{text}'; can't understand '{term}'"
                ))
            })?;
            if !COMMON_FIELDS.contains(&key) && !resource_fields(plural).contains(&key) {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {key}"
                )));
            }
            Ok(if negated {
                Requirement::NotEquals(key.to_owned(), value)
            } else {
                Requirement::Equals(key.to_owned(), value)
            })
        })
        .collect()
}

/// `key=value`, `key==value` or `key!=value` → (key, value, negated).
fn equality(term: &str) -> Option<(&str, String, bool)> {
    if let Some((key, value)) = term.split_once("!=") {
        return Some((key.trim(), value.trim().to_owned(), true));
    }
    let (key, value) = term.split_once("==").or_else(|| term.split_once('='))?;
    Some((key.trim(), value.trim().to_owned(), false))
}

fn checked_key(key: &str) -> Option<String> {
    let valid = !key.is_empty()
        && key.len() <= 317
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    valid.then(|| key.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Value {
        json!({"metadata": {"name": "web-1", "namespace": "default",
                            "labels": {"app": "nginx", "tier": "front"}},
               "status": {"phase": "Running"}})
    }

    #[test]
    fn label_selectors() {
        let matches = |s: &str| {
            Filter::parse("pods", Some(s), None)
                .unwrap()
                .matches(&pod())
        };
        assert!(matches("app=nginx"));
        assert!(matches("app==nginx,tier"));
        assert!(!matches("app!=nginx"));
        assert!(matches("tier in (front, back),!missing"));
        assert!(!matches("tier notin (front)"));
        assert!(matches(""));
        assert!(Filter::parse("pods", Some("=x"), None).is_err());
        assert!(Filter::parse("pods", Some("a in b"), None).is_err());
    }

    #[test]
    fn field_selectors() {
        let matches = |s: &str| {
            Filter::parse("pods", None, Some(s))
                .unwrap()
                .matches(&pod())
        };
        assert!(matches("metadata.name=web-1"));
        assert!(matches("status.phase=Running,metadata.namespace=default"));
        assert!(!matches("metadata.name!=web-1"));
        assert!(matches("spec.nodeName="));
        assert!(Filter::parse("configmaps", None, Some("status.phase=Running")).is_err());
        assert!(Filter::parse("pods", None, Some("metadata.name")).is_err());
    }
}
