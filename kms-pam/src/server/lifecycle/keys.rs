//! The gateways' audit keys as KMS trusts them: a key counts only with KMS's endorsement, a
//! signature by KMS's own audit key, which is read from its file at start
//! (`ServerConfig::audit_key_path`), never from the database. Keys stored before endorsements
//! existed are endorsed once, at the upgrade.

use std::path::Path;
use std::time::SystemTime;

use crate::audit::evidence::signing::{key_endorsement_message, PublicKey, SigningKey};
use crate::server::config::ServerError;
use crate::server::edge::error::ApiError;
use crate::server::edge::state::AppState;
use crate::server::store::Store;

/// The audit key registered for a gateway, if KMS's own key endorses it: a key without a valid
/// endorsement (swapped in the database, or stored before endorsements and not endorsed at the
/// upgrade) is not trusted for anything.
pub(crate) async fn gateway_key(
    state: &AppState,
    gateway_id: &str,
) -> Result<Option<PublicKey>, ApiError> {
    Ok(match held_gateway_key(state, gateway_id).await? {
        Some((key, true)) => Some(key),
        _ => None,
    })
}

/// The audit key the database holds for a gateway, and whether KMS's endorsement of it
/// verifies with KMS's key.
pub(crate) async fn held_gateway_key(
    state: &AppState,
    gateway_id: &str,
) -> Result<Option<(PublicKey, bool)>, ApiError> {
    let Some((text, endorsement)) = state.store.gateway_audit_key(gateway_id).await? else {
        return Ok(None);
    };
    let key = PublicKey::from_base64(&text).map_err(|e| {
        ApiError::internal(&format!("stored audit key of gateway {gateway_id}: {e}"))
    })?;
    let endorsed = endorsement.is_some_and(|sig| {
        state
            .audit_key
            .public_key()
            .verify(&key_endorsement_message(gateway_id, &key), &sig)
    });
    Ok(Some((key, endorsed)))
}

/// KMS's endorsement of `key` as the audit key of gateway `gateway_id` (base64 signature).
pub(crate) fn endorse(state: &AppState, gateway_id: &str, key: &PublicKey) -> String {
    endorse_with(&state.audit_key, gateway_id, key)
}

/// [`endorse`] with the key itself, before the state exists (at the upgrade).
pub(crate) fn endorse_with(kms_key: &SigningKey, gateway_id: &str, key: &PublicKey) -> String {
    kms_key.sign(&key_endorsement_message(gateway_id, key))
}

/// Endorses, once, the gateway audit keys stored before KMS endorsed keys: at the first start
/// of this version, marked by the file `marker` (beside KMS's audit key, not in the database,
/// which whoever can write it could reset). Later starts endorse nothing, so a key swapped in
/// the database afterwards stays unendorsed. Returns how many keys it endorsed.
pub(crate) async fn endorse_keys_at_upgrade(
    store: &dyn Store,
    kms_key: &SigningKey,
    marker: &Path,
) -> Result<usize, ServerError> {
    if marker.exists() {
        return Ok(0);
    }
    let mut endorsed = 0;
    for (gateway_id, text) in store.unendorsed_gateway_audit_keys().await? {
        let Ok(key) = PublicKey::from_base64(&text) else {
            tracing::warn!(gateway = %gateway_id, "stored audit key is not a key; not endorsed");
            continue;
        };
        let endorsement = endorse_with(kms_key, &gateway_id, &key);
        if store
            .endorse_gateway_audit_key(&gateway_id, &text, &endorsement)
            .await?
        {
            tracing::info!(gateway = %gateway_id, key = %key.fingerprint(),
                "endorsed a gateway audit key stored before this version (upgrade)");
            endorsed += 1;
        }
    }
    let note = format!(
        "KMS endorsed the gateway audit keys stored before endorsements at {}; it does so only \
         while this file is missing\n",
        crate::time::format_rfc3339(SystemTime::now())
    );
    std::fs::write(marker, note).map_err(|source| ServerError::DataDir {
        path: marker.to_owned(),
        source,
    })?;
    Ok(endorsed)
}
