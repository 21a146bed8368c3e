//! The KMS API's JSON bodies: whatever bytes or JSON a client (or a KMS, for the CLI and the
//! gateway) sends, decoding any body type never panics, and what decodes encodes back to itself.

use std::fmt::Debug;

use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use super::check;
use crate::kms::api::*;

/// Every field name of the API's bodies (and of the events a gateway uploads), so generated
/// objects reach past "missing field".
const FIELDS: &[&str] = &[
    "account",
    "address",
    "admin",
    "ca_cert",
    "ca_certificate",
    "certificate",
    "changes",
    "code",
    "command",
    "commands",
    "complete",
    "created_at",
    "csr",
    "description",
    "details",
    "duplicates",
    "duration_secs",
    "end_cause",
    "enrollment_token",
    "error",
    "events",
    "exit_code",
    "expires_at",
    "extra",
    "gateway",
    "gateway_address",
    "gateway_token",
    "id",
    "kind",
    "last_heartbeat",
    "max_duration_secs",
    "message",
    "method",
    "name",
    "namespace",
    "number",
    "path",
    "reason",
    "requests",
    "resource",
    "seq",
    "session",
    "session_id",
    "ssl_verify",
    "started_at",
    "status",
    "stored",
    "time",
    "token",
    "sealed_token",
    "sealing_key",
    "enc",
    "ciphertext",
    "suite",
    "truncated_reason",
    "url",
    "user",
    "verb",
    "ended_at",
    "type",
    "request_id",
    "bytes_in",
    "bytes_out",
    "duration_ms",
    "prev_hash",
    "hash",
    "query",
    "info",
    "result",
    "count",
    "event_id",
    "output",
    "chunks",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop_oneof![
            Just("2026-01-01T10:00:00Z".to_owned()),
            Just("1969-12-31T23:59:59.999Z".to_owned()),
            Just("9999-12-31T23:59:59.999999999Z".to_owned()),
            Just("0000-01-01T00:00:00+23:59".to_owned()),
            "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,12})?(Z|[+-][0-9]{2}:[0-9]{2})",
            Just("active".to_owned()),
            Just("terminated".to_owned()),
            Just("request_finished".to_owned()),
            Just("session_ended".to_owned()),
            Just("intact".to_owned()),
            Just("00000000-0000-0000-0000-000000000000".to_owned()),
            any::<String>(),
        ]
        .prop_map(Value::from),
    ]
}

/// JSON values whose objects use the API's field names.
fn json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(FIELDS), inner), 0..10).prop_map(
                |fields| {
                    Value::Object(
                        fields
                            .into_iter()
                            .map(|(k, v)| ((*k).to_owned(), v))
                            .collect::<Map<_, _>>(),
                    )
                }
            ),
        ]
    })
}

/// Bytes: JSON text of generated values, mangled or not, and noise.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        json().prop_map(|v| v.to_string().into_bytes()),
        (json(), any::<usize>(), any::<u8>()).prop_map(|(v, at, b)| {
            let mut bytes = v.to_string().into_bytes();
            if !bytes.is_empty() {
                let at = at % bytes.len();
                bytes[at] = b;
            }
            bytes
        }),
        prop::collection::vec(any::<u8>(), 0..200),
    ]
}

/// Valid bodies of the API's main shapes: mutated, they reach deep into decoding.
fn templates() -> Vec<Value> {
    use crate::audit::{AuditEvent, AuditEventKind, RequestFinished, RequestStarted};
    use crate::kube::RequestInfo;
    use crate::session::SessionId;
    let session = serde_json::json!({"id": "6f1c", "user": "alice", "resource": "prod",
        "account": "admin", "gateway": "gw-1", "status": "active",
        "created_at": "2026-01-01T10:00:00Z", "expires_at": "2026-01-01T11:00:00Z",
        "ended_at": null, "reason": "incident", "end_cause": "termination"});
    let started = AuditEvent::now(
        SessionId::new("6f1c"),
        AuditEventKind::RequestStarted(Box::new(RequestStarted {
            request_id: 1,
            method: "GET".into(),
            path: "/api/v1/namespaces/default/pods".into(),
            query: Some("watch=true".into()),
            info: RequestInfo::classify(
                &http::Method::GET,
                "/api/v1/namespaces/default/pods",
                None,
            ),
            kubectl_command: Some("kubectl get".into()),
            kubectl_session: Some("k-1".into()),
            user_agent: None,
            impersonation: None,
        })),
    );
    let finished = AuditEvent::now(
        SessionId::new("6f1c"),
        AuditEventKind::RequestFinished(RequestFinished {
            request_id: 1,
            status: 200,
            bytes_in: 0,
            bytes_out: 10,
            duration_ms: 3,
            error: None,
        }),
    );
    let mut detail = session.clone();
    detail["commands"] = serde_json::json!([{"command": "kubectl get",
        "started_at": "2026-01-01T10:01:00.000Z", "kubectl_session": "k-1", "requests": [
        {"time": "2026-01-01T10:01:00.100Z", "method": "GET", "path": "/api", "status": 200,
         "verb": "get", "resource": "pods", "namespace": "default", "name": null,
         "discovery": true}]}]);
    vec![
        serde_json::json!({"name": "alice", "admin": true}),
        serde_json::json!({"name": "gw-1", "enrollment_token": "kmse_x", "csr": "CSR",
            "address": "10.0.0.5:8443"}),
        serde_json::json!({"kind": "kubernetes", "name": "prod", "url": "https://k:6443",
            "gateway": "gw-1", "ssl_verify": true, "ca_cert": "PEM"}),
        serde_json::json!({"name": "admin", "token": "t", "description": "ops",
            "max_duration_secs": 3600}),
        serde_json::json!({"resource": "prod", "account": "admin", "user": "alice",
            "max_duration_secs": 3600}),
        serde_json::json!({"resource": "prod", "account": "admin", "duration_secs": 600,
            "reason": "r", "csr": "CSR"}),
        serde_json::json!({"address": "10.0.0.5:8443"}),
        serde_json::json!({"events": [
            serde_json::to_value(started).unwrap_or_default(),
            serde_json::to_value(finished).unwrap_or_default()]}),
        serde_json::json!({"error": {"code": "not_found", "message": "no such thing"}}),
        serde_json::json!({"name": "alice", "kind": "user", "admin": false}),
        serde_json::json!({"user": {"name": "alice", "admin": false,
            "created_at": "2026-01-01T10:00:00Z"}, "token": "kmsu_x"}),
        serde_json::json!({"gateway": {"name": "gw-1", "address": null, "status": "offline",
            "last_heartbeat": "2026-01-01T10:00:00Z", "created_at": "2026-01-01T10:00:00Z"},
            "enrollment_token": "kmse_x", "expires_at": "2026-01-01T11:00:00Z"}),
        serde_json::json!({"certificate": "C", "ca_certificate": "CA", "gateway_token": "g"}),
        serde_json::json!({"name": "prod", "kind": "kubernetes", "url": "https://k",
            "gateway": "gw", "ssl_verify": false, "ca_cert": null,
            "created_at": "2026-01-01T10:00:00Z"}),
        serde_json::json!({"resource": "prod", "name": "admin", "description": null,
            "max_duration_secs": 28800, "created_at": "2026-01-01T10:00:00Z"}),
        serde_json::json!({"id": "g-1", "resource": "prod", "account": "admin", "user": "a",
            "max_duration_secs": 1, "created_at": "2026-01-01T10:00:00Z"}),
        session.clone(),
        serde_json::json!({"session": session, "certificate": "C", "ca_certificate": "CA",
            "gateway_address": "gw:8443"}),
        serde_json::json!({"seq": 4, "changes": [{"session_id": "6f1c", "status": "ended"}]}),
        detail,
        serde_json::json!({"stored": 1, "duplicates": 0}),
        serde_json::json!({"result": "broken", "seq": 3, "event_id": "e", "reason": "r"}),
        serde_json::json!({"url": "https://k", "ssl_verify": true, "ca_cert": null,
            "sealed_token": {"suite": "s", "enc": "AA==", "ciphertext": "AA=="}}),
    ]
}

/// `template` with fields dropped, replaced by `pool` values or added, as `dice` say.
fn mutate(template: &Value, dice: &mut std::slice::Iter<'_, u8>, pool: &mut Vec<Value>) -> Value {
    fn roll(dice: &mut std::slice::Iter<'_, u8>) -> u8 {
        dice.next().copied().unwrap_or(7)
    }
    match template {
        Value::Object(fields) => {
            let mut out = Map::new();
            for (key, value) in fields {
                match roll(dice) % 10 {
                    0 => {}
                    1 => {
                        out.insert(key.clone(), pool.pop().unwrap_or(Value::Null));
                    }
                    _ => {
                        out.insert(key.clone(), mutate(value, dice, pool));
                    }
                }
                if roll(dice) % 16 == 0 {
                    let extra = FIELDS[usize::from(roll(dice)) % FIELDS.len()];
                    out.insert(extra.to_owned(), pool.pop().unwrap_or(Value::Null));
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .filter_map(|item| match roll(dice) % 10 {
                    0 => None,
                    1 => pool.pop(),
                    _ => Some(mutate(item, dice, pool)),
                })
                .collect(),
        ),
        leaf if roll(dice) % 6 == 0 => pool.pop().unwrap_or_else(|| leaf.clone()),
        leaf => leaf.clone(),
    }
}

fn mutated() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(templates()),
        prop::collection::vec(any::<u8>(), 0..96),
        prop::collection::vec(json(), 0..8),
    )
        .prop_map(|(template, dice, mut pool)| mutate(&template, &mut dice.iter(), &mut pool))
}

/// Decoding never panics; a decoded value encodes, and decoding that gives an equal value
/// (after one round, which normalises e.g. sub-second times some fields do not keep).
fn decodes<T>(bytes: &[u8], value: &Value) -> Result<(), TestCaseError>
where
    T: DeserializeOwned + Serialize + PartialEq + Debug,
{
    let _ = serde_json::from_slice::<T>(bytes);
    if let Ok(first) = serde_json::from_value::<T>(value.clone()) {
        let text = serde_json::to_string(&first).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let second: T = serde_json::from_str(&text)
            .map_err(|e| TestCaseError::fail(format!("{text} does not decode: {e}")))?;
        let text_again =
            serde_json::to_string(&second).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let third: T = serde_json::from_str(&text_again)
            .map_err(|e| TestCaseError::fail(format!("{text_again} does not decode: {e}")))?;
        prop_assert_eq!(second, third);
    }
    Ok(())
}

macro_rules! every_body {
    ($bytes:expr, $value:expr; $($ty:ty),* $(,)?) => {
        $( decodes::<$ty>($bytes, $value)?; )*
    };
}

#[test]
fn every_body_type_decodes_any_input_without_panicking() {
    let value = prop_oneof![1 => json(), 3 => mutated()];
    check("kms api bodies", (body(), value), |(bytes, value)| {
        every_body!(&bytes, &value;
            // Requests the KMS decodes.
            CreateUser, CreateGateway, EnrollGateway, CreateResource, CreateAccount, CreateGrant,
            CreateSession, Heartbeat, UploadEvents,
            // Answers the CLI and the gateway decode.
            ErrorBody, WhoAmI, User, CreatedUser, Gateway, CreatedGateway, EnrolledGateway,
            Resource, Account, Grant, SessionView, CreatedSession, Changes, SessionDetail,
            UploadedEvents, ChainReport, RecordingView,
        );
        // No PartialEq: decoding alone.
        let _ = serde_json::from_slice::<GatewayCredential>(&bytes);
        let _ = serde_json::from_value::<GatewayCredential>(value);
        Ok(())
    });
}

#[test]
fn the_templates_are_valid_bodies() {
    let decodes = |v: &Value| {
        macro_rules! any_of {
            ($($ty:ty),*) => { false $(|| serde_json::from_value::<$ty>(v.clone()).is_ok())* };
        }
        any_of!(
            CreateUser,
            EnrollGateway,
            CreateResource,
            CreateAccount,
            CreateGrant,
            CreateSession,
            Heartbeat,
            UploadEvents,
            ErrorBody,
            WhoAmI,
            CreatedUser,
            CreatedGateway,
            EnrolledGateway,
            Resource,
            Account,
            Grant,
            SessionView,
            CreatedSession,
            Changes,
            SessionDetail,
            UploadedEvents,
            ChainReport,
            GatewayCredential
        )
    };
    for template in templates() {
        assert!(decodes(&template), "{template}");
    }
}

/// Regression (found by this target): without serde_json's exact float parsing, a number in a
/// body lost its last digit on every decode-encode round.
#[test]
fn numbers_survive_a_round_trip_exactly() {
    let json = r#"{"command":"kubectl get","started_at":"2026-01-01T10:01:00.000Z",
        "requests":[],"kubectl_session":2.9267819996249756e97}"#;
    let first: Value = serde_json::from_str(json).unwrap();
    let text = serde_json::to_string(&first).unwrap();
    let second: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(first, second);
    assert_eq!(text, serde_json::to_string(&second).unwrap());
}
