//! The gateway's two keys beside its identity: the audit key that signs its events and the
//! sealing key KMS seals its credentials to; each made on first use and registered with KMS.

use std::path::Path;

use super::{GatewayError, Identity, KmsGateway, AUDIT_KEY_FILE, SEALING_KEY_FILE};
use crate::audit::evidence::signing::SigningKey;
use crate::credential::sealing::SealingKey;
use crate::kms::client::KmsClient;

/// The gateway's audit key, made on first use (an identity enrolled before audit keys existed
/// gets one at its next start and registers it then).
pub(super) fn load_audit_key(dir: &Path) -> Result<SigningKey, GatewayError> {
    let path = dir.join(AUDIT_KEY_FILE);
    let (key, created) = SigningKey::load_or_create(&path).map_err(GatewayError::AuditKey)?;
    if created {
        tracing::info!(path = %path.display(), key = %key.public_key().fingerprint(),
            "created the gateway's audit key");
    }
    Ok(key)
}

/// Makes sure KMS holds this gateway's audit key: registered at enrollment, or now for an
/// identity enrolled before audit keys existed. KMS refuses events signed by any other key.
pub(super) async fn register_audit_key(
    client: &KmsClient,
    identity: &Identity,
    config: &KmsGateway,
) -> Result<(), GatewayError> {
    let public = identity.audit_key.public_key();
    client
        .gateway()
        .register_audit_key(&public)
        .await
        .map_err(|source| GatewayError::AuditKeyRefused {
            fingerprint: public.fingerprint(),
            key_path: config.data_dir.join(AUDIT_KEY_FILE),
            data_dir: config.data_dir.clone(),
            source: Box::new(source),
        })?;
    tracing::info!(key = %public.fingerprint(), "audit key registered with KMS");
    Ok(())
}

/// The gateway's sealing key, made on first use (an identity enrolled before sealing keys
/// existed gets one at its next start and registers it then).
pub(super) fn load_sealing_key(dir: &Path) -> Result<SealingKey, GatewayError> {
    let path = dir.join(SEALING_KEY_FILE);
    let (key, created) = SealingKey::load_or_create(&path).map_err(GatewayError::SealingKey)?;
    if created {
        tracing::info!(path = %path.display(), "created the gateway's credential sealing key");
    }
    Ok(key)
}

/// Makes sure KMS holds this gateway's sealing key: registered at enrollment, or now for an
/// identity enrolled before sealing keys existed. KMS hands out credentials sealed to it only.
pub(super) async fn register_sealing_key(
    client: &KmsClient,
    identity: &Identity,
    config: &KmsGateway,
) -> Result<(), GatewayError> {
    let public = identity.sealing_key.public_key();
    client
        .gateway()
        .register_sealing_key(&public)
        .await
        .map_err(|source| GatewayError::SealingKeyRefused {
            key_path: config.data_dir.join(SEALING_KEY_FILE),
            data_dir: config.data_dir.clone(),
            source: Box::new(source),
        })?;
    tracing::debug!("credential sealing key registered with KMS");
    Ok(())
}
