//! The gateways' audit keys as KMS trusts them: a key counts only with KMS's endorsement, a
//! signature by KMS's own audit key, which is read from its file at start
//! (`ServerConfig::audit_key_path`), never from the database. Keys stored before endorsements
//! existed are endorsed once, at the upgrade.
//!
//! Each session is bound, when KMS creates it, to the key its gateway then has ([`SessionKey`]):
//! KMS signs the session id with that key, and signs a head only over events signed with it.
//! A key registered later — by whoever made a gateway row of their own in the database — never
//! vouches for an existing session.

use std::path::Path;
use std::time::SystemTime;

use crate::audit::evidence::signing::{
    key_endorsement_message, key_endorsement_message_v2, session_key_message, PublicKey, SigningKey,
};
use crate::server::config::ServerError;
use crate::server::edge::error::ApiError;
use crate::server::edge::state::AppState;
use crate::server::store::{SessionKeyRecord, SessionRecord, Store};
use crate::session::SessionId;

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
    Ok(endorsed_key(state, gateway_id)
        .await?
        .map(|(key, endorsement)| (key, endorsement != Endorsement::None)))
}

/// How KMS endorsed a gateway's key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endorsement {
    /// Not at all (or not with its key): the key is not trusted.
    None,
    /// At the upgrade that introduced endorsements, for a key stored before.
    Upgrade,
    /// By a running KMS: at enrollment, or as a gateway's first key.
    Running,
}

async fn endorsed_key(
    state: &AppState,
    gateway_id: &str,
) -> Result<Option<(PublicKey, Endorsement)>, ApiError> {
    let Some((text, endorsement)) = state.store.gateway_audit_key(gateway_id).await? else {
        return Ok(None);
    };
    let key = PublicKey::from_base64(&text).map_err(|e| {
        ApiError::internal(&format!("stored audit key of gateway {gateway_id}: {e}"))
    })?;
    let kms = state.audit_key.public_key();
    let signed = |message: Vec<u8>| {
        endorsement
            .as_ref()
            .is_some_and(|s| kms.verify(&message, s))
    };
    let how = if signed(key_endorsement_message_v2(gateway_id, &key)) {
        Endorsement::Running
    } else if signed(key_endorsement_message(gateway_id, &key)) {
        Endorsement::Upgrade
    } else {
        Endorsement::None
    };
    Ok(Some((key, how)))
}

/// KMS's endorsement of `key` as the audit key of gateway `gateway_id` (base64 signature).
pub(crate) fn endorse(state: &AppState, gateway_id: &str, key: &PublicKey) -> String {
    state
        .audit_key
        .sign(&key_endorsement_message_v2(gateway_id, key))
}

/// The upgrade's endorsement of a key stored before endorsements existed.
fn endorse_at_upgrade(kms_key: &SigningKey, gateway_id: &str, key: &PublicKey) -> String {
    kms_key.sign(&key_endorsement_message(gateway_id, key))
}

/// Binds a new session to its gateway's endorsed key: the key and KMS's signature over it and
/// the session id. `None` when the gateway has no endorsed key (it cannot sign events yet).
pub(crate) async fn bind_session_key(
    state: &AppState,
    session: &SessionId,
    gateway_id: &str,
) -> Result<Option<SessionKeyRecord>, ApiError> {
    Ok(gateway_key(state, gateway_id)
        .await?
        .map(|key| SessionKeyRecord {
            ticket: state
                .audit_key
                .sign(&session_key_message(session.as_str(), &key)),
            gateway_key: key.to_base64(),
        }))
}

/// The gateway key a session's events must be signed with, as far as KMS can vouch for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SessionKey {
    /// The key KMS bound the session to when it created it.
    Bound(PublicKey),
    /// A session created before KMS bound sessions to keys: its gateway's key, endorsed at the
    /// upgrade (a key endorsed since then vouches only for the sessions bound to it).
    Legacy(PublicKey),
    /// None: why, for `verify`.
    Untrusted(String),
}

impl SessionKey {
    /// The key, if KMS vouches for one.
    pub(crate) fn key(&self) -> Option<PublicKey> {
        match self {
            Self::Bound(key) | Self::Legacy(key) => Some(*key),
            Self::Untrusted(_) => None,
        }
    }
}

/// The key [`bind_session_key`] bound `record` to, checked with KMS's key; for a session
/// without one, its gateway's key if the upgrade endorsed it.
pub(crate) async fn session_key(
    state: &AppState,
    record: &SessionRecord,
) -> Result<SessionKey, ApiError> {
    let id = &record.session.id;
    if let Some(bound) = state.store.session_key(id).await? {
        let key = PublicKey::from_base64(&bound.gateway_key).ok();
        let kms = state.audit_key.public_key();
        return Ok(match key {
            Some(key) if kms.verify(&session_key_message(id.as_str(), &key), &bound.ticket) => {
                SessionKey::Bound(key)
            }
            _ => SessionKey::Untrusted(format!(
                "KMS's binding of session {id} to its gateway's key does not verify with KMS's \
                 key: it was written by someone else than KMS"
            )),
        });
    }
    Ok(match endorsed_key(state, &record.gateway_id).await? {
        Some((key, Endorsement::Upgrade)) => SessionKey::Legacy(key),
        Some((key, Endorsement::Running)) => SessionKey::Untrusted(format!(
            "KMS holds no binding of session {id} to a gateway key, and the key of gateway {} \
             ({}) was endorsed after KMS began binding sessions to keys: it cannot vouch for a \
             session it was not bound to (the binding was deleted, or the session moved to \
             another gateway)",
            record.session.gateway,
            key.fingerprint()
        )),
        Some((key, Endorsement::None)) => SessionKey::Untrusted(format!(
            "the audit key KMS's database holds for gateway {} ({}) is not endorsed by KMS's \
             key: it was put there by someone else than KMS (or before this version and not \
             endorsed at the upgrade); its signatures prove nothing",
            record.session.gateway,
            key.fingerprint()
        )),
        None => SessionKey::Untrusted(format!(
            "no gateway key is known to check session {id}'s events with"
        )),
    })
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
        let endorsement = endorse_at_upgrade(kms_key, &gateway_id, &key);
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
    std::fs::write(marker, note).map_err(|source| ServerError::EndorsementMarker {
        path: marker.to_owned(),
        source,
    })?;
    Ok(endorsed)
}
