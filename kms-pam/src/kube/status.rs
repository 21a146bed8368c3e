//! Kubernetes `Status` bodies: how the proxy path tells kubectl what went wrong.

use bytes::Bytes;
use serde::Serialize;

/// A `v1.Status` failure as the API server would send it; kubectl prints `message`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    kind: &'static str,
    api_version: &'static str,
    metadata: EmptyMeta,
    status: &'static str,
    /// What a person should read.
    pub message: String,
    /// A machine-readable reason (`Unauthorized`, `Forbidden`, `ServiceUnavailable`, ...).
    pub reason: &'static str,
    /// The HTTP status code.
    pub code: u16,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
struct EmptyMeta {}

impl Status {
    /// A failure with the given HTTP code, reason and message.
    pub fn failure(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind: "Status",
            api_version: "v1",
            metadata: EmptyMeta {},
            status: "Failure",
            message: message.into(),
            reason,
            code,
        }
    }

    /// The JSON body.
    pub fn to_json(&self) -> Bytes {
        // Serializing a struct of strings and integers cannot fail.
        Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }

    /// The body of a watch `ERROR` event carrying this status: how a watch that the proxy cuts
    /// tells kubectl why.
    pub fn to_watch_error_event(&self) -> Bytes {
        #[derive(Serialize)]
        struct Event<'a> {
            #[serde(rename = "type")]
            kind: &'static str,
            object: &'a Status,
        }
        let mut line = serde_json::to_vec(&Event {
            kind: "ERROR",
            object: self,
        })
        .unwrap_or_default();
        line.push(b'\n');
        Bytes::from(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_like_the_api_server() {
        let s = Status::failure(401, "Unauthorized", "session expired");
        let v: serde_json::Value = serde_json::from_slice(&s.to_json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
                "message":"session expired","reason":"Unauthorized","code":401})
        );
        let ev: serde_json::Value =
            serde_json::from_slice(s.to_watch_error_event().trim_ascii_end()).unwrap();
        assert_eq!(ev["type"], "ERROR");
        assert_eq!(ev["object"]["code"], 401);
    }
}
