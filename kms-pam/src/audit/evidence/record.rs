//! The signed record of a session: its metadata, the head KMS signs once the record is complete
//! ([`SignedHead`]) and the self-contained [`SessionBundle`] that carries them with the events.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::chain::canonical_json;
use super::signing::{head_message, PublicKey, SigningKey};
use crate::audit::write::AuditError;
use crate::session::{SessionBinding, SessionId, SessionStatus, SessionView};

/// The `format` of a [`SessionBundle`].
pub const BUNDLE_FORMAT: &str = "kms-pam-session-bundle/1";
/// The `format` of a [`SessionHead`].
pub const HEAD_FORMAT: &str = "kms-pam-session-head/1";

/// The metadata of a session that its record binds: who, what, through which gateway, why,
/// when, and how it ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionMetadata {
    /// Session id.
    pub id: SessionId,
    /// User.
    pub user: String,
    /// PAM resource.
    pub resource: String,
    /// PAM account.
    pub account: String,
    /// Gateway.
    pub gateway: String,
    /// The reason the user gave.
    #[serde(default)]
    pub reason: Option<String>,
    /// Creation time.
    #[serde(with = "crate::time::rfc3339")]
    pub created_at: SystemTime,
    /// Expiry.
    #[serde(with = "crate::time::rfc3339")]
    pub expires_at: SystemTime,
    /// Status.
    pub status: SessionStatus,
    /// When it ended.
    #[serde(with = "crate::time::rfc3339_option", default)]
    pub ended_at: Option<SystemTime>,
    /// Why it ended, as KMS names the cause (`user`, `expiry`, …).
    #[serde(default)]
    pub end_cause: Option<String>,
    /// The project, user id and client the session is bound to (absent in records KMS wrote
    /// before it bound them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding: Option<SessionBinding>,
}

impl SessionMetadata {
    /// The metadata of a session as the API shows it.
    pub fn from_view(view: &SessionView) -> Self {
        let s = &view.session;
        let end_cause = view.end_cause.and_then(|cause| {
            serde_json::to_value(cause)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
        });
        Self {
            id: s.id.clone(),
            user: s.user.clone(),
            resource: s.resource.clone(),
            account: s.account.clone(),
            gateway: s.gateway.clone(),
            reason: s.reason.clone(),
            created_at: s.created_at,
            expires_at: s.expires_at,
            status: s.status,
            ended_at: s.ended_at,
            end_cause,
            binding: s.binding.clone(),
        }
    }

    /// `(field, value)` pairs, for comparing two views of a session field by field.
    pub(super) fn fields(&self) -> Vec<(&'static str, Value)> {
        let time = |t: SystemTime| Value::from(crate::time::format_rfc3339(t));
        let mut fields = vec![
            ("id", Value::from(self.id.as_str())),
            ("user", Value::from(self.user.as_str())),
            ("resource", Value::from(self.resource.as_str())),
            ("account", Value::from(self.account.as_str())),
            ("gateway", Value::from(self.gateway.as_str())),
            (
                "reason",
                self.reason.clone().map_or(Value::Null, Value::from),
            ),
            ("created_at", time(self.created_at)),
            ("expires_at", time(self.expires_at)),
            ("status", Value::from(self.status.as_str())),
            ("ended_at", self.ended_at.map_or(Value::Null, time)),
            (
                "end_cause",
                self.end_cause.clone().map_or(Value::Null, Value::from),
            ),
        ];
        if let Some(binding) = &self.binding {
            fields.extend(binding_fields(binding));
        }
        fields
    }
}

/// `(field, value)` pairs of a binding; an unrecorded client address, agent or identity is
/// `null`.
pub(super) fn binding_fields(binding: &SessionBinding) -> [(&'static str, Value); 5] {
    let text = |t: &Option<String>| t.clone().map_or(Value::Null, Value::from);
    let identity = binding
        .identity
        .as_ref()
        .and_then(|person| serde_json::to_value(person).ok())
        .unwrap_or(Value::Null);
    [
        ("project_id", Value::from(binding.project_id.as_str())),
        ("user_id", Value::from(binding.user_id.as_str())),
        ("client_address", text(&binding.client_address)),
        ("user_agent", text(&binding.user_agent)),
        ("identity", identity),
    ]
}

/// What KMS signs once a session has ended and the gateway's signed end is stored: the
/// metadata, the last link of the chain, and the gateway key that signed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionHead {
    /// [`HEAD_FORMAT`].
    pub format: String,
    /// The session, as KMS held it when it signed.
    pub session: SessionMetadata,
    /// The last event's `seq`: the number of events.
    pub last_seq: u64,
    /// The last event's `hash`.
    pub last_hash: String,
    /// The gateway key whose signatures the events carry.
    pub gateway_key: PublicKey,
    /// When KMS signed.
    #[serde(with = "crate::time::rfc3339")]
    pub sealed_at: SystemTime,
}

/// A [`SessionHead`] with KMS's signature (base64 Ed25519 over the head's canonical JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedHead {
    /// What was signed.
    pub head: SessionHead,
    /// KMS's signature.
    pub signature: String,
}

impl SignedHead {
    /// Signs `head` with KMS's key.
    pub fn sign(head: SessionHead, key: &SigningKey) -> Result<Self, AuditError> {
        let message = head_message(&canonical(&head)?);
        Ok(Self {
            signature: key.sign(&message),
            head,
        })
    }

    /// Whether KMS's key `key` signed exactly this head.
    pub fn verify(&self, key: &PublicKey) -> bool {
        canonical(&self.head).is_ok_and(|c| key.verify(&head_message(&c), &self.signature))
    }
}

fn canonical(head: &SessionHead) -> Result<Vec<u8>, AuditError> {
    let value = serde_json::to_value(head)
        .map_err(|e| AuditError::failed(format!("cannot serialize a session head: {e}")))?;
    Ok(canonical_json(&value))
}

/// A session's record, self-contained: metadata, every event exactly as stored, KMS's signed
/// head, and the public keys that should verify them. The keys in a bundle are hints: the
/// verifier is given the keys to trust (or their fingerprints) from elsewhere.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionBundle {
    /// [`BUNDLE_FORMAT`].
    pub format: String,
    /// The session as KMS holds it.
    pub session: SessionMetadata,
    /// The session's events, by `seq`, as stored.
    pub events: Vec<Value>,
    /// KMS's signed head, once the session ended and its record was complete.
    #[serde(default)]
    pub head: Option<SignedHead>,
    /// The gateway key KMS holds for the session's gateway.
    #[serde(default)]
    pub gateway_key: Option<PublicKey>,
    /// KMS's key.
    pub kms_key: PublicKey,
    /// When it was exported.
    #[serde(with = "crate::time::rfc3339")]
    pub exported_at: SystemTime,
}
