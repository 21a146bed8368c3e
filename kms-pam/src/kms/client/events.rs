//! Session tracking calls: gateways upload their spooled events (the [`Uploader`] the
//! [`SpoolShipper`](crate::audit::SpoolShipper) drives); users verify sessions and replay
//! recordings.

use async_trait::async_trait;
use http::Method;

use super::{Call, KmsClient, KmsError};
use crate::audit::{AuditError, AuditEvent, Uploader};
use crate::kms::api::{
    AuditKeys, ChainReport, PublicKey, RecordingView, RegisterAuditKey, SessionBundle,
    UploadEvents, UploadedEvents,
};
use crate::session::SessionId;

/// Largest JSON body sent in one upload; bigger batches go in several calls, in order. KMS
/// accepts up to 16 MiB, so one event of up to 12 MiB still fits alone.
const UPLOAD_BYTES: usize = 4 << 20;

impl KmsClient {
    /// `POST /v1/gateway/events` (gateway token): stores `events` (chained, a session's in
    /// `seq` order) once each. Sending a batch again stores nothing twice.
    pub async fn upload_events(&self, events: &[AuditEvent]) -> Result<UploadedEvents, KmsError> {
        let body = UploadEvents {
            events: events.to_vec(),
        };
        self.call(Call::new(Method::POST, &["gateway", "events"]).json(&body)?)
            .await
    }

    /// `GET /v1/sessions/{id}/verify` (owner, admin): the check of the session's hash chain.
    pub async fn verify_session(&self, id: &SessionId) -> Result<ChainReport, KmsError> {
        let segments = ["sessions", id.as_str(), "verify"];
        self.call(Call::new(Method::GET, &segments).in_project())
            .await
    }

    /// `GET /v1/sessions/{id}/export` (owner, admin, auditor): the session's record as a
    /// self-contained bundle, for `kms-pam verify-bundle`.
    pub async fn export_session(&self, id: &SessionId) -> Result<SessionBundle, KmsError> {
        let segments = ["sessions", id.as_str(), "export"];
        self.call(Call::new(Method::GET, &segments).in_project())
            .await
    }

    /// `GET /v1/audit/keys`: KMS's audit key and every gateway's.
    pub async fn audit_keys(&self) -> Result<AuditKeys, KmsError> {
        self.call(Call::new(Method::GET, &["audit", "keys"])).await
    }

    /// `POST /v1/gateway/audit-key` (gateway token): registers the gateway's audit key if it has
    /// none yet; the same key again is fine, another one is refused (`conflict`).
    pub async fn register_audit_key(&self, key: &PublicKey) -> Result<(), KmsError> {
        let body = RegisterAuditKey { public_key: *key };
        self.call_no_answer(Call::new(Method::POST, &["gateway", "audit-key"]).json(&body)?)
            .await
    }

    /// `GET /v1/sessions/{id}/recordings/{n}` (owner, admin): the `n`-th (1-based) recorded exec
    /// or attach stream, replayed.
    pub async fn session_recording(
        &self,
        id: &SessionId,
        number: usize,
    ) -> Result<RecordingView, KmsError> {
        let number = number.to_string();
        let segments = ["sessions", id.as_str(), "recordings", number.as_str()];
        self.call(Call::new(Method::GET, &segments).in_project())
            .await
    }
}

/// Ships spooled events to KMS in calls of at most `UPLOAD_BYTES` (4 MiB), in order, so that each
/// call links to the one before it.
#[async_trait]
impl Uploader for KmsClient {
    async fn upload(&self, batch: &[AuditEvent]) -> Result<(), AuditError> {
        for part in split(batch, UPLOAD_BYTES) {
            self.upload_events(part)
                .await
                .map_err(|e| AuditError::failed(format!("uploading audit events: {e}")))?;
        }
        Ok(())
    }
}

/// `batch` cut into runs whose JSON stays under `limit` bytes (an event larger than `limit`
/// goes alone).
fn split(batch: &[AuditEvent], limit: usize) -> Vec<&[AuditEvent]> {
    let mut parts = Vec::new();
    let (mut start, mut size) = (0, 0);
    for (i, event) in batch.iter().enumerate() {
        let len = serde_json::to_vec(event).map_or(0, |json| json.len() + 1);
        if i > start && size + len > limit {
            parts.push(&batch[start..i]);
            (start, size) = (i, 0);
        }
        size += len;
    }
    if start < batch.len() {
        parts.push(&batch[start..]);
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditEventKind;
    use crate::session::SessionStatus;

    fn event() -> AuditEvent {
        AuditEvent::now(
            SessionId::new("s1"),
            AuditEventKind::SessionEnded {
                status: SessionStatus::Ended,
                ended_at: None,
                end_cause: None,
            },
        )
    }

    #[test]
    fn batches_are_split_in_order_under_the_limit() {
        let batch: Vec<_> = (0..10).map(|_| event()).collect();
        let one = serde_json::to_vec(&batch[0]).unwrap().len() + 1;
        let parts = split(&batch, one * 3);
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [3, 3, 3, 1]
        );
        let rejoined: Vec<_> = parts.concat();
        assert_eq!(rejoined, batch);
        assert_eq!(split(&batch, 1).len(), 10, "an oversized event goes alone");
        assert!(split(&[], 100).is_empty());
    }
}
