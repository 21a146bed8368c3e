//! A gateway's calls (the third table of docs/api.md's "Endpoints", with the gateway token):
//! its heartbeat, its sessions and their credentials, the change feed, its audit key and its
//! events, behind [`KmsClient::gateway`]. The client is also the [`Uploader`] the
//! [`SpoolShipper`](crate::audit::SpoolShipper) drives.

use std::time::Duration;

use async_trait::async_trait;
use http::Method;

use super::error::KmsError;
use super::kms_client::{Call, KmsClient};
use crate::audit::{AuditError, AuditEvent, Uploader};
use crate::credential::sealing::SealingPublicKey;
use crate::kms::api::{
    Changes, GatewayCredential, GatewayReach, Heartbeat, PublicKey, RegisterAuditKey,
    RegisterSealingKey, RenewGatewayCertificate, RenewedGatewayCertificate, SessionView,
    UploadEvents, UploadedEvents,
};
use crate::session::SessionId;

/// Largest JSON body sent in one upload; bigger batches go in several calls, in order. KMS
/// accepts up to 16 MiB, so one event of up to 12 MiB still fits alone.
const UPLOAD_BYTES: usize = 4 << 20;

/// The longest `changes` long poll the API allows.
const MAX_CHANGES_WAIT: Duration = Duration::from_secs(30);

impl KmsClient {
    /// A gateway's own calls (`/v1/gateway/…`, gateway token); the organisation's management of
    /// gateways is [`KmsClient::gateways`]'.
    pub fn gateway(&self) -> GatewayApi<'_> {
        GatewayApi { client: self }
    }
}

/// A gateway's own calls: [`KmsClient::gateway`].
#[derive(Clone, Copy, Debug)]
pub struct GatewayApi<'a> {
    client: &'a KmsClient,
}

impl GatewayApi<'_> {
    /// `POST /v1/gateway/heartbeat` (gateway token), saying how CLIs reach the gateway now.
    pub async fn heartbeat(&self, address: &str, reach: &GatewayReach) -> Result<(), KmsError> {
        let body = Heartbeat {
            address: address.to_owned(),
            reach: reach.clone(),
        };
        self.client
            .call_no_answer(Call::new(Method::POST, &["gateway", "heartbeat"]).json(&body)?)
            .await
    }

    /// `POST /v1/gateway/certificate` (gateway token): a renewed identity certificate for the
    /// key of `csr`.
    pub async fn renew_certificate(
        &self,
        csr: &str,
    ) -> Result<RenewedGatewayCertificate, KmsError> {
        let body = RenewGatewayCertificate {
            csr: csr.to_owned(),
        };
        let call = Call::new(Method::POST, &["gateway", "certificate"]).json(&body)?;
        self.client.call(call).await
    }

    /// `GET /v1/gateway/sessions/{id}` (gateway token): a session bound to the caller.
    pub async fn session(&self, id: &SessionId) -> Result<SessionView, KmsError> {
        let segments = ["gateway", "sessions", id.as_str()];
        self.client.call(Call::new(Method::GET, &segments)).await
    }

    /// `GET /v1/gateway/sessions/{id}/credential` (gateway token): the account's upstream and
    /// token sealed to the caller's sealing key, only while the session is active and bound to
    /// the caller.
    pub async fn credential(&self, id: &SessionId) -> Result<GatewayCredential, KmsError> {
        let segments = ["gateway", "sessions", id.as_str(), "credential"];
        self.client.call(Call::new(Method::GET, &segments)).await
    }

    /// `GET /v1/gateway/changes?after=SEQ&wait_secs=N` (gateway token): status changes of the
    /// caller's sessions after `after`, waiting up to `wait_secs` (at most 30) seconds for one.
    /// `after = 0` answers at once with the current sequence number.
    pub async fn changes(&self, after: u64, wait_secs: u64) -> Result<Changes, KmsError> {
        let wait = Duration::from_secs(wait_secs).min(MAX_CHANGES_WAIT);
        let mut call = Call::new(Method::GET, &["gateway", "changes"]);
        call.query = vec![
            ("after", after.to_string()),
            ("wait_secs", wait.as_secs().to_string()),
        ];
        call.extra_wait = wait;
        self.client.call(call).await
    }

    /// `POST /v1/gateway/audit-key` (gateway token): registers the gateway's audit key if it has
    /// none yet; the same key again is fine, another one is refused (`conflict`).
    pub async fn register_audit_key(&self, key: &PublicKey) -> Result<(), KmsError> {
        let body = RegisterAuditKey { public_key: *key };
        self.client
            .call_no_answer(Call::new(Method::POST, &["gateway", "audit-key"]).json(&body)?)
            .await
    }

    /// `POST /v1/gateway/sealing-key` (gateway token): registers the key KMS seals this
    /// gateway's credentials to if it has none yet; the same key again is fine, another one is
    /// refused (`conflict`).
    pub async fn register_sealing_key(&self, key: &SealingPublicKey) -> Result<(), KmsError> {
        let body = RegisterSealingKey {
            public_key: key.clone(),
        };
        self.client
            .call_no_answer(Call::new(Method::POST, &["gateway", "sealing-key"]).json(&body)?)
            .await
    }

    /// `POST /v1/gateway/events` (gateway token): stores `events` (chained, a session's in
    /// `seq` order) once each. Sending a batch again stores nothing twice.
    pub async fn upload_events(&self, events: &[AuditEvent]) -> Result<UploadedEvents, KmsError> {
        let body = UploadEvents {
            events: events.to_vec(),
        };
        self.client
            .call(Call::new(Method::POST, &["gateway", "events"]).json(&body)?)
            .await
    }
}

/// Ships spooled events to KMS in calls of at most `UPLOAD_BYTES` (4 MiB), in order, so that each
/// call links to the one before it.
#[async_trait]
impl Uploader for KmsClient {
    async fn upload(&self, batch: &[AuditEvent]) -> Result<(), AuditError> {
        for part in split(batch, UPLOAD_BYTES) {
            self.gateway()
                .upload_events(part)
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
