//! `POST /v1/gateway/events`: gateways deliver their spooled audit events
//! (docs/session-tracking.md). Each event is stored once, so a batch sent again answers 200 and
//! stores nothing twice; each must continue its session's stored hash chain.
//!
//! Per session, the batch's events are taken in `seq` order and each is checked: its `hash`
//! recomputed over its content; an event at a `seq` already stored must be the very event stored
//! there (a resend) or the batch is refused (`conflict`); a new event must be the next `seq` and
//! name the stored head's hash as `prev_hash`. An event that cannot be linked yet (events before
//! it are missing) is refused with `conflict` too: the shipper keeps the batch and retries, and a
//! gateway ships each session's events in order, so the gap closes once the earlier batch lands.
//! An event whose content does not match its hash, or that is not signed with the calling
//! gateway's audit key, is refused with `invalid`; these checks run first, outside any lock.
//!
//! The chain checks run inside the store's append transaction, which holds each session's append
//! lock until it commits ([`EventStore::append_events`](crate::server::store::EventStore)): with
//! several replicas, an upload arriving at one while another still stores the session's previous
//! upload waits for it and links to it, rather than being refused for a gap about to close. A
//! refused upload stores nothing, for any of its sessions. A batch that delivers a session's signed end
//! has KMS sign the session's head (`audit_trail`).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;

use crate::audit::evidence::chain::{event_hash, GENESIS_HASH};
use crate::audit::evidence::signing::{event_message, PublicKey};
use crate::audit::{AuditEvent, AuditEventKind};
use crate::kms::api::{UploadEvents, UploadedEvents};
use crate::server::edge::auth::GatewayCaller;
use crate::server::edge::error::ApiError;
use crate::server::edge::extract::ApiJson;
use crate::server::edge::state::{now, AppState};
use crate::server::lifecycle::commands;
use crate::server::lifecycle::keys::{gateway_key, session_key, SessionKey};
use crate::server::lifecycle::sealing::seal_delivered;
use crate::server::store::{EventLink, EventRecord, EventSpan, GatewayRecord, StoreError};
use crate::session::SessionId;

/// Most events accepted in one call.
pub(crate) const MAX_BATCH: usize = 5_000;

/// `POST /v1/gateway/events`.
pub(crate) async fn ingest(
    State(state): State<AppState>,
    GatewayCaller(gateway): GatewayCaller,
    ApiJson(body): ApiJson<UploadEvents>,
) -> Result<Json<UploadedEvents>, ApiError> {
    if body.events.len() > MAX_BATCH {
        return Err(ApiError::invalid(format!(
            "a batch holds at most {MAX_BATCH} events; got {}",
            body.events.len()
        )));
    }
    let mut by_session: BTreeMap<SessionId, Vec<AuditEvent>> = BTreeMap::new();
    for event in body.events {
        by_session
            .entry(event.session_id.clone())
            .or_default()
            .push(event);
    }
    let key = gateway_key(&state, &gateway.id).await?.ok_or_else(|| {
        ApiError::invalid(format!(
            "gateway {} has no audit key registered with KMS and endorsed by KMS's key, so \
                 its events cannot be authenticated; restart it (it registers its key when it \
                 starts), or enroll it again if its stored key is not endorsed",
            gateway.name
        ))
    })?;
    let mut checked: BTreeMap<SessionId, Vec<Checked>> = BTreeMap::new();
    let mut spans = Vec::new();
    let mut ended = Vec::new();
    let mut touched = Vec::new();
    let mut received = 0u64;
    for (session, mut events) in by_session {
        check_bound(&state, &gateway, &session, &key).await?;
        events.sort_by_key(|e| e.seq);
        let (Some(first), Some(last)) = (events.first(), events.last()) else {
            continue;
        };
        spans.push(EventSpan {
            session_id: session.clone(),
            first_seq: first.seq,
            last_seq: last.seq,
        });
        if matches!(last.kind, AuditEventKind::SessionEnded { .. }) {
            ended.push(session.clone());
        }
        if events.iter().any(|e| shapes_commands(&e.kind)) {
            touched.push(session.clone());
        }
        received += events.len() as u64;
        let events = events
            .into_iter()
            .map(|event| {
                Ok(Checked {
                    json: check_content(&event, &key)?,
                    event,
                })
            })
            .collect::<Result<_, ApiError>>()?;
        checked.insert(session, events);
    }
    // Linking runs inside the store's transaction, under each session's append lock: a batch
    // whose predecessors another replica is still storing waits for them and links to them.
    let link_session = |session: &SessionId, head: Option<EventLink>, stored: &[EventLink]| {
        checked.get(session).map_or_else(
            || Ok(Vec::new()),
            |events| link(session, events, head, stored),
        )
    };
    let stored = state
        .store
        .append_events(&spans, now(), &link_session)
        .await?;
    // A head that could not be signed fails the upload: the gateway sends the batch again, and
    // its end, found stored, asks for the head again.
    seal_delivered(&state, &ended).await?;
    // The lines the console's search finds commands by; failing here fails the upload, and the
    // gateway's resend (stored already, so nothing new) indexes them again.
    commands::index(&*state.store, &touched).await?;
    // Events found stored (sent again, or stored by a concurrent call of the same batch that
    // took the lock first) are duplicates.
    let duplicates = received.saturating_sub(stored);
    if stored > 0 {
        tracing::debug!(gateway = %gateway.name, stored, duplicates, "audit events stored");
    }
    Ok(Json(UploadedEvents { stored, duplicates }))
}

/// Whether an event changes its session's command lines ([`crate::audit::Command::line`]): a
/// request, or a stream opened or described (an exec's command).
fn shapes_commands(kind: &AuditEventKind) -> bool {
    matches!(
        kind,
        AuditEventKind::RequestStarted(_)
            | AuditEventKind::StreamOpened { .. }
            | AuditEventKind::StreamDetails(_)
    )
}

/// An uploaded event whose hash and signature were checked, with its JSON text.
struct Checked {
    event: AuditEvent,
    json: String,
}

/// Refuses events of a session that does not exist or is bound to another gateway.
/// The session must be bound to the calling gateway, and, where KMS bound it to a gateway key
/// when it created it, to the key the calling gateway signs with: a key registered since (by
/// a gateway row made in the database, say) cannot add to the session's record.
async fn check_bound(
    state: &AppState,
    gateway: &GatewayRecord,
    session: &SessionId,
    key: &PublicKey,
) -> Result<(), ApiError> {
    let refused = || {
        ApiError::forbidden(format!(
            "session {session} is not bound to gateway {}; its events are refused",
            gateway.name
        ))
    };
    let record = match state.store.session(session).await {
        Ok(record) if record.gateway_id == gateway.id => record,
        Ok(_) | Err(StoreError::NotFound(_)) => return Err(refused()),
        Err(e) => return Err(e.into()),
    };
    match session_key(state, &record).await? {
        SessionKey::Bound(bound) if bound != *key => Err(ApiError::forbidden(format!(
            "session {session} was bound to gateway key {} when KMS created it; events signed \
             with {} are refused",
            bound.fingerprint(),
            key.fingerprint()
        ))),
        _ => Ok(()),
    }
}

/// The events of one session (sorted by `seq`, content checked) that are new, checked against
/// the stored chain: its `head` and the `stored` events in the batch's `seq` range.
fn link(
    session: &SessionId,
    events: &[Checked],
    head: Option<EventLink>,
    stored: &[EventLink],
) -> Result<Vec<EventRecord>, StoreError> {
    let head_seq = head.as_ref().map_or(0, |h| h.seq);
    let resent: BTreeMap<u64, &EventLink> = stored.iter().map(|l| (l.seq, l)).collect();
    let mut head = head.map_or_else(
        || (0, GENESIS_HASH.to_owned()),
        |link| (link.seq, link.hash),
    );
    let mut new = Vec::new();
    for Checked { event, json } in events {
        let id = event.id.to_string();
        if event.seq <= head_seq {
            match resent.get(&event.seq) {
                Some(stored) if stored.id == id && stored.hash == event.hash => continue,
                _ => {
                    return Err(StoreError::Conflict(format!(
                        "session {session} already holds another event at seq {} (event {id} \
                         refused)",
                        event.seq
                    )))
                }
            }
        }
        if new
            .last()
            .is_some_and(|r: &EventRecord| r.id == id && r.seq == event.seq)
        {
            continue; // the same event twice in one batch
        }
        if event.seq != head.0 + 1 {
            return Err(StoreError::Conflict(format!(
                "event {id} (seq {}) cannot be linked yet: session {session}'s events are \
                 stored up to seq {}; send the missing events first",
                event.seq, head.0
            )));
        }
        if event.prev_hash != head.1 {
            return Err(StoreError::Conflict(format!(
                "event {id} (seq {}) does not continue session {session}'s stored chain: its \
                 prev_hash is not the hash of seq {}",
                event.seq, head.0
            )));
        }
        head = (event.seq, event.hash.clone());
        new.push(EventRecord {
            id,
            session_id: session.clone(),
            seq: event.seq,
            hash: event.hash.clone(),
            json: json.clone(),
        });
    }
    Ok(new)
}

/// The event's JSON text, once its `hash` is found to cover exactly that content and `sig` to be
/// the gateway's signature of that `hash`.
fn check_content(event: &AuditEvent, key: &PublicKey) -> Result<String, ApiError> {
    let id = event.id;
    if event.seq == 0 || event.hash.is_empty() {
        return Err(ApiError::invalid(format!(
            "event {id} is not chained (no seq or hash)"
        )));
    }
    let expected = event_hash(event).map_err(|e| ApiError::invalid(e.to_string()))?;
    if expected != event.hash {
        return Err(ApiError::invalid(format!(
            "event {id} (seq {} of session {}): the content does not match its hash",
            event.seq, event.session_id
        )));
    }
    if !key.verify(&event_message(&event.hash), &event.sig) {
        return Err(ApiError::invalid(format!(
            "event {id} (seq {} of session {}) is not signed with this gateway's audit key {}",
            event.seq,
            event.session_id,
            key.fingerprint()
        )));
    }
    serde_json::to_string(event).map_err(|e| ApiError::internal(&e))
}
