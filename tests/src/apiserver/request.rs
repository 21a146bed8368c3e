//! Reading a request: query parameters, content negotiation and bodies.

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use super::response::ApiError;
use super::table::{IncludeObject, TableRequest};

/// Larger bodies get `413`, like a real server's request size limit.
const MAX_BODY: usize = 32 * 1024 * 1024;

/// Decoded query parameters, keeping repeats (`command=a&command=b`).
#[derive(Debug, Default, Clone)]
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    pub(crate) fn parse(raw: Option<&str>) -> Self {
        let pairs = url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        Self(pairs)
    }

    /// The first value of `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// A boolean parameter as Go's `strconv.ParseBool` reads it; absent means false.
    pub(crate) fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.get(name) {
            None | Some("") => Ok(false),
            Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
            Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
            Some(other) => Err(ApiError::bad_request(format!(
                "invalid value {other:?} for parameter {name}: must be a boolean"
            ))),
        }
    }

    /// A numeric parameter; absent is None, garbage is a `400`.
    pub(crate) fn number(&self, name: &str) -> Result<Option<i64>, ApiError> {
        self.get(name)
            .filter(|v| !v.is_empty())
            .map(|v| {
                v.parse().map_err(|_| {
                    ApiError::bad_request(format!(
                        "invalid value {v:?} for parameter {name}: must be an integer"
                    ))
                })
            })
            .transpose()
    }

    pub(crate) fn dry_run(&self) -> Result<bool, ApiError> {
        match self.get("dryRun") {
            None | Some("") => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "unsupported dryRun value {other:?}; only \"All\" is allowed"
            ))),
        }
    }
}

/// What a read should answer with.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Output {
    Json,
    Table(TableRequest),
}

/// Picks the first media type in `Accept` the double can produce, as the real server does.
pub(crate) fn negotiate(headers: &HeaderMap, query: &Query) -> Result<Output, ApiError> {
    let accept = headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if accept.trim().is_empty() {
        return Ok(Output::Json);
    }
    for offer in accept.split(',') {
        let mut parts = offer.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default().to_ascii_lowercase();
        let params: Vec<(String, String)> = parts
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let param = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        if !matches!(media.as_str(), "application/json" | "application/*" | "*/*") {
            continue;
        }
        match (param("as"), param("g"), param("v")) {
            (None, _, _) => return Ok(Output::Json),
            (Some("Table"), Some("meta.k8s.io"), Some(version @ ("v1" | "v1beta1"))) => {
                let include =
                    IncludeObject::parse(query.get("includeObject")).ok_or_else(|| {
                        ApiError::bad_request(
                            "includeObject must be one of None, Metadata or Object",
                        )
                    })?;
                let version = if version == "v1" { "v1" } else { "v1beta1" };
                return Ok(Output::Table(TableRequest { version, include }));
            }
            _ => continue,
        }
    }
    Err(ApiError::NotAcceptable)
}

/// The media type of the request body, without parameters, lowercased.
pub(crate) fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or("application/json")
        .trim()
        .to_ascii_lowercase()
}

/// Reads the whole body (bounded) and records it.
pub(crate) async fn read_body(body: Incoming) -> Result<Bytes, ApiError> {
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(ApiError::TooLarge),
        Err(error) => Err(ApiError::bad_request(format!(
            "reading the request body failed: {error}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::ACCEPT, value.parse().unwrap());
        headers
    }

    #[test]
    fn kubectl_get_asks_for_a_table() {
        let headers = accept("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json");
        let Ok(Output::Table(table)) = negotiate(&headers, &Query::default()) else {
            panic!("expected a table");
        };
        assert_eq!(table.version, "v1");
        assert_eq!(table.include, IncludeObject::Metadata);
    }

    #[test]
    fn falls_back_and_refuses() {
        let protobuf_first = accept("application/vnd.kubernetes.protobuf, application/json");
        assert!(matches!(
            negotiate(&protobuf_first, &Query::default()),
            Ok(Output::Json)
        ));
        assert!(matches!(
            negotiate(&HeaderMap::new(), &Query::default()),
            Ok(Output::Json)
        ));
        let only_protobuf = accept("application/vnd.kubernetes.protobuf");
        assert_eq!(
            negotiate(&only_protobuf, &Query::default()).err(),
            Some(ApiError::NotAcceptable)
        );
    }

    #[test]
    fn query_values() {
        let query = Query::parse(Some(
            "command=echo&command=a%20b&stdin=true&tailLines=x&watch=1",
        ));
        assert_eq!(query.all("command"), vec!["echo", "a b"]);
        assert!(query.flag("stdin").unwrap());
        assert!(query.flag("watch").unwrap());
        assert!(!query.flag("tty").unwrap());
        assert!(query.number("tailLines").is_err());
        assert_eq!(query.number("limit").unwrap(), None);
        assert!(Query::parse(Some("stdin=maybe")).flag("stdin").is_err());
    }
}
