//! The per-session hash chain that makes a session's events tamper-evident.
//!
//! Every event of a session carries `seq` (1, 2, 3, …), `prev_hash` (the previous event's `hash`,
//! [`GENESIS_HASH`] for the first) and `hash`: the hex SHA-256 over the 32 bytes `prev_hash`
//! encodes followed by the event's canonical JSON without its `hash` field. Canonical JSON is the
//! event's JSON with object keys sorted bytewise and no whitespace, so a receiver that stored the
//! event in another key order still verifies it (the gateway's signature, `sig`, is left out
//! too: it signs the link). [`ChainingSink`] assigns the links as events are recorded, and signs
//! them when given the gateway's key; [`verify_chain`] finds the first broken link, and
//! [`crate::audit::evidence`] checks signatures, the KMS-signed head and the metadata.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ring::digest;
use serde::Serialize;
use serde_json::Value;

use super::signing::{event_message, SigningKey};
use crate::audit::write::{AuditError, AuditEvent, AuditEventKind, AuditSink, ChainHead};
use crate::session::SessionId;

/// The `prev_hash` of a session's first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// How long a session's chain is kept after its `SessionEnded`, so that the `StreamClosed` and
/// `RequestFinished` of streams cut by the end still continue it.
pub const DEFAULT_ENDED_GRACE: Duration = Duration::from_secs(300);

/// What a verification found: [`verify_chain`] (the links only) or
/// [`crate::audit::evidence::verify_session`] (links, signatures, the KMS-signed head and the
/// metadata). Also KMS's answer to `GET /v1/sessions/{id}/verify`, which
/// `kms-pam pam sessions verify` prints, and what `kms-pam verify-bundle` prints:
/// `{"result":"intact","count":12,"sealed":true}`,
/// `{"result":"altered","seq":3,"event_id":…,"reason":…}`,
/// `{"result":"truncated","stored":12,"expected":17,"reason":…}`,
/// `{"result":"metadata_changed","fields":["user"],"reason":…}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ChainReport {
    /// Every link, signature and binding holds.
    Intact {
        /// Events checked.
        count: usize,
        /// Whether KMS's signed head covers them (an ended session's record is complete).
        #[serde(default)]
        sealed: bool,
    },
    /// An event, or the signed head, is not what was signed: content changed (re-hashed or not),
    /// an event missing from the middle, out of order, or not signed by the gateway.
    Altered {
        /// The position (1-based) where the record stops holding: the `seq` the event there
        /// should have. `None` when it is the signed head itself that does not verify.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seq: Option<u64>,
        /// The id of the event found at that position.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        /// What is wrong, for a person.
        reason: String,
    },
    /// Events are missing from the end: the signed head names more than are stored, or an
    /// ended session lacks the gateway's signed end or KMS's signed head.
    Truncated {
        /// Events stored.
        stored: u64,
        /// Events the signed head says the session has, when there is one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expected: Option<u64>,
        /// What is wrong, for a person.
        reason: String,
    },
    /// The session's metadata (user, account, resource, gateway, reason, times, status, end
    /// cause) is not what the gateway and KMS signed.
    MetadataChanged {
        /// The fields that differ.
        fields: Vec<String>,
        /// What is wrong, for a person.
        reason: String,
    },
    /// A result this version does not know, read from a newer KMS's answer. Never produced by
    /// this library; a reader treats it as "not shown intact".
    #[serde(other)]
    Unknown,
}

impl ChainReport {
    /// Whether the record holds.
    pub fn is_intact(&self) -> bool {
        matches!(self, Self::Intact { .. })
    }

    fn altered_at(seq: u64, event_id: String, reason: String) -> Self {
        Self::Altered {
            seq: Some(seq),
            event_id: Some(event_id),
            reason,
        }
    }
}

/// The hex SHA-256 link of `event`, over its `prev_hash` and its canonical JSON without `hash`.
pub fn event_hash(event: &AuditEvent) -> Result<String, AuditError> {
    let value = serde_json::to_value(event)
        .map_err(|e| AuditError::failed(format!("cannot serialize audit event: {e}")))?;
    link_hash(&value).map_err(AuditError::failed)
}

/// Checks one session's events, in stored order, and reports the first broken link: content that
/// does not match its hash, a missing or repeated `seq`, events out of order, a `prev_hash` that
/// is not the previous event's `hash`, or an event of another session.
pub fn verify_chain(events: &[AuditEvent]) -> ChainReport {
    let mut values = Vec::with_capacity(events.len());
    for (position, event) in (1u64..).zip(events) {
        match serde_json::to_value(event) {
            Ok(value) => values.push(value),
            Err(e) => {
                return ChainReport::altered_at(
                    position,
                    event.id.to_string(),
                    format!("cannot serialize the event: {e}"),
                )
            }
        }
    }
    verify_chain_json(&values)
}

/// [`verify_chain`] over events as stored JSON objects, so that a receiver checks exactly what it
/// received, whatever fields a newer gateway added.
pub fn verify_chain_json(events: &[Value]) -> ChainReport {
    let mut prev = GENESIS_HASH.to_owned();
    let mut session: Option<&Value> = None;
    for (position, event) in (1u64..).zip(events) {
        let broken = |reason: String| {
            let id = text(event, "id").unwrap_or_default().to_owned();
            ChainReport::altered_at(position, id, reason)
        };
        let this_session = event.get("session_id");
        if session.is_some_and(|first| Some(first) != this_session) {
            return broken("the event belongs to another session".into());
        }
        session = session.or(this_session);
        let seq = event.get("seq").and_then(Value::as_u64).unwrap_or(0);
        if seq != position {
            let what = if seq == 0 {
                "the event is not chained (no seq)".to_owned()
            } else if seq > position {
                format!("expected seq {position}, found {seq}: events are missing")
            } else {
                format!("expected seq {position}, found {seq}: out of order or repeated")
            };
            return broken(what);
        }
        if text(event, "prev_hash") != Some(prev.as_str()) {
            return broken(format!(
                "prev_hash does not match the hash of event {}",
                position - 1
            ));
        }
        match link_hash(event) {
            Ok(hash) if text(event, "hash") == Some(hash.as_str()) => prev = hash,
            Ok(_) => return broken("the content does not match its hash (altered)".into()),
            Err(e) => return broken(e),
        }
    }
    ChainReport::Intact {
        count: events.len(),
        sealed: false,
    }
}

fn text<'v>(value: &'v Value, key: &str) -> Option<&'v str> {
    value.get(key).and_then(Value::as_str)
}

/// SHA-256 over the raw bytes of `prev_hash` and the canonical JSON of `event` without `hash`
/// and `sig`.
fn link_hash(event: &Value) -> Result<String, String> {
    let prev = text(event, "prev_hash").unwrap_or_default();
    let prev = decode_hex32(prev).ok_or("prev_hash is not a hex SHA-256")?;
    let mut canonical = Vec::with_capacity(512);
    match event {
        Value::Object(fields) => write_object(
            fields
                .iter()
                .filter(|(key, _)| !matches!(key.as_str(), "hash" | "sig")),
            &mut canonical,
        ),
        _ => return Err("the event is not a JSON object".into()),
    }
    let mut context = digest::Context::new(&digest::SHA256);
    context.update(&prev);
    context.update(&canonical);
    Ok(encode_hex(context.finish().as_ref()))
}

/// JSON with object keys sorted bytewise and no whitespace: the bytes hashes and signatures
/// cover.
pub fn canonical_json(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    write_canonical(value, &mut out);
    out
}

/// Writes JSON with object keys sorted bytewise and no whitespace. Scalars are written by
/// serde_json, whose output for a given value is fixed.
fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(fields) => write_object(fields.iter(), out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        // Writing a scalar into a Vec cannot fail.
        scalar => drop(serde_json::to_writer(&mut *out, scalar)),
    }
}

fn write_object<'v>(fields: impl Iterator<Item = (&'v String, &'v Value)>, out: &mut Vec<u8>) {
    let mut fields: Vec<_> = fields.collect();
    fields.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    out.push(b'{');
    for (i, (key, value)) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        drop(serde_json::to_writer(&mut *out, key));
        out.push(b':');
        write_canonical(value, out);
    }
    out.push(b'}');
}

fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

fn decode_hex32(hex: &str) -> Option<[u8; 32]> {
    let digits = hex.as_bytes();
    if digits.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let nibble = |d: u8| char::from(d).to_digit(16);
        *byte = u8::try_from(nibble(pair[0])? << 4 | nibble(pair[1])?).ok()?;
    }
    Some(out)
}

/// Chains every event of a session (`seq`, `prev_hash`, `hash`), signs it when given a key
/// ([`ChainingSink::with_signer`]), and forwards it to `inner`.
///
/// Per session, assigning the link and forwarding happen under one lock, so `inner` receives each
/// session's events in `seq` order. An event `inner` refuses takes no `seq`: the chain is the
/// record of what was kept, and the refusal is the caller's to log and count
/// (`audit_events_dropped`). A `SessionEnded` closes the session's chain: a later event is
/// refused (the gateway waits for a session's requests before it records the end, so this is
/// what outlived that wait), until a new `SessionStarted` reopens it (KMS let the session go on
/// after a gateway had stopped it). A session's state is dropped [`DEFAULT_ENDED_GRACE`] after
/// its `SessionEnded`. After a restart, [`ChainingSink::resume`] continues chains from the heads
/// the spool persisted ([`crate::audit::Spool::chain_heads`]).
pub struct ChainingSink<S> {
    inner: S,
    chains: Mutex<Chains>,
    grace: Duration,
    signer: Option<Arc<SigningKey>>,
}

/// Where one session's chain stands.
struct Link {
    head: ChainHead,
    /// Its last event is a `SessionEnded`.
    ended: bool,
}

#[derive(Default)]
struct Chains {
    heads: HashMap<SessionId, Arc<Mutex<Link>>>,
    ended: VecDeque<(SessionId, Instant)>,
}

impl<S: AuditSink> ChainingSink<S> {
    /// Chains events into `inner`, every session starting at `seq` 1.
    pub fn new(inner: S) -> Self {
        Self::resume(inner, HashMap::new())
    }

    /// Chains events into `inner`, continuing the sessions in `heads` after their last event.
    pub fn resume(inner: S, heads: HashMap<SessionId, ChainHead>) -> Self {
        let heads = heads
            .into_iter()
            .map(|(id, head)| (id, Arc::new(Mutex::new(Link { head, ended: false }))))
            .collect();
        Self {
            inner,
            chains: Mutex::new(Chains {
                heads,
                ended: VecDeque::new(),
            }),
            grace: DEFAULT_ENDED_GRACE,
            signer: None,
        }
    }

    /// Signs every event's link with `key` (the gateway's audit key): the `sig` field.
    pub fn with_signer(mut self, key: Arc<SigningKey>) -> Self {
        self.signer = Some(key);
        self
    }

    /// Keeps an ended session's chain for `grace` instead of [`DEFAULT_ENDED_GRACE`].
    pub fn with_ended_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// The wrapped sink.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Where `session`'s chain stands, if it is known.
    pub fn head(&self, session: &SessionId) -> Option<ChainHead> {
        let chains = lock(&self.chains);
        chains
            .heads
            .get(session)
            .map(|link| lock(link).head.clone())
    }

    fn session_link(&self, session: &SessionId) -> Arc<Mutex<Link>> {
        let mut chains = lock(&self.chains);
        let now = Instant::now();
        while let Some((id, ended)) = chains.ended.front() {
            if now.duration_since(*ended) < self.grace {
                break;
            }
            let id = id.clone();
            chains.ended.pop_front();
            chains.heads.remove(&id);
        }
        let genesis = || {
            Arc::new(Mutex::new(Link {
                head: ChainHead {
                    seq: 0,
                    hash: GENESIS_HASH.to_owned(),
                },
                ended: false,
            }))
        };
        chains
            .heads
            .entry(session.clone())
            .or_insert_with(genesis)
            .clone()
    }
}

#[async_trait]
impl<S: AuditSink> AuditSink for ChainingSink<S> {
    fn record(&self, mut event: AuditEvent) -> Result<(), AuditError> {
        let session = event.session_id.clone();
        let ends = matches!(event.kind, AuditEventKind::SessionEnded { .. });
        let starts = matches!(event.kind, AuditEventKind::SessionStarted { .. });
        let link = self.session_link(&session);
        {
            let mut link = lock(&link);
            if link.ended && !starts {
                return Err(AuditError::failed(format!(
                    "session {session} already ended at this gateway and its record is closed;                      a late event is not recorded"
                )));
            }
            event.seq = link.head.seq + 1;
            event.prev_hash = link.head.hash.clone();
            event.hash = event_hash(&event)?;
            if let Some(key) = &self.signer {
                event.sig = key.sign(&event_message(&event.hash));
            }
            let next = ChainHead {
                seq: event.seq,
                hash: event.hash.clone(),
            };
            self.inner.record(event)?;
            link.head = next;
            link.ended = ends;
        }
        if ends {
            lock(&self.chains)
                .ended
                .push_back((session, Instant::now()));
        }
        Ok(())
    }

    async fn flush(&self) -> Result<(), AuditError> {
        self.inner.flush().await
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
#[path = "chain_tests.rs"]
mod tests;

impl<S: std::fmt::Debug> std::fmt::Debug for ChainingSink<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainingSink")
            .field("inner", &self.inner)
            .field("grace", &self.grace)
            .field("signer", &self.signer)
            .finish_non_exhaustive()
    }
}
