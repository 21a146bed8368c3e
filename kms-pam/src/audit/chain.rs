//! The per-session hash chain that makes a session's events tamper-evident.
//!
//! Every event of a session carries `seq` (1, 2, 3, …), `prev_hash` (the previous event's `hash`,
//! [`GENESIS_HASH`] for the first) and `hash`: the hex SHA-256 over the 32 bytes `prev_hash`
//! encodes followed by the event's canonical JSON without its `hash` field. Canonical JSON is the
//! event's JSON with object keys sorted bytewise and no whitespace, so a receiver that stored the
//! event in another key order still verifies it. [`ChainingSink`] assigns the links as events are
//! recorded; [`verify_chain`] finds the first broken one.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ring::digest;
use serde::Serialize;
use serde_json::Value;

use super::{AuditError, AuditEvent, AuditEventKind, AuditSink};
use crate::session::SessionId;

/// The `prev_hash` of a session's first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// How long a session's chain is kept after its `SessionEnded`, so that the `StreamClosed` and
/// `RequestFinished` of streams cut by the end still continue it.
pub const DEFAULT_ENDED_GRACE: Duration = Duration::from_secs(300);

/// The last link of a session's chain: what the next event continues from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ChainHead {
    /// The last event's `seq`.
    pub seq: u64,
    /// The last event's `hash`.
    pub hash: String,
}

/// What [`verify_chain`] found; also the KMS's answer to `GET /v1/sessions/{id}/verify`
/// (`{"result":"intact","count":12}` or `{"result":"broken","seq":3,"event_id":…,"reason":…}`),
/// which `kms-pam pam sessions verify` prints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ChainReport {
    /// Every link holds.
    Intact {
        /// Events checked.
        count: usize,
    },
    /// The first link that does not hold.
    Broken {
        /// The position (1-based) where the chain breaks: the `seq` the event there should have.
        seq: u64,
        /// The id of the event found at that position.
        event_id: String,
        /// What is wrong, for a person.
        reason: String,
    },
    /// A result this version does not know, read from a newer KMS's answer. Never produced by
    /// [`verify_chain`]; a reader treats it as "not shown intact".
    #[serde(other)]
    Unknown,
}

/// The hex SHA-256 link of `event`, over its `prev_hash` and its canonical JSON without `hash`.
pub fn event_hash(event: &AuditEvent) -> Result<String, AuditError> {
    let value = serde_json::to_value(event)
        .map_err(|e| AuditError::Failed(format!("cannot serialize audit event: {e}")))?;
    link_hash(&value).map_err(AuditError::Failed)
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
                return ChainReport::Broken {
                    seq: position,
                    event_id: event.id.to_string(),
                    reason: format!("cannot serialize the event: {e}"),
                }
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
        let broken = |reason: String| ChainReport::Broken {
            seq: position,
            event_id: text(event, "id").unwrap_or_default().to_owned(),
            reason,
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
    }
}

fn text<'v>(value: &'v Value, key: &str) -> Option<&'v str> {
    value.get(key).and_then(Value::as_str)
}

/// SHA-256 over the raw bytes of `prev_hash` and the canonical JSON of `event` without `hash`.
fn link_hash(event: &Value) -> Result<String, String> {
    let prev = text(event, "prev_hash").unwrap_or_default();
    let prev = decode_hex32(prev).ok_or("prev_hash is not a hex SHA-256")?;
    let mut canonical = Vec::with_capacity(512);
    match event {
        Value::Object(fields) => write_object(
            fields.iter().filter(|(key, _)| key.as_str() != "hash"),
            &mut canonical,
        ),
        _ => return Err("the event is not a JSON object".into()),
    }
    let mut context = digest::Context::new(&digest::SHA256);
    context.update(&prev);
    context.update(&canonical);
    Ok(encode_hex(context.finish().as_ref()))
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

/// Chains every event of a session (`seq`, `prev_hash`, `hash`) and forwards it to `inner`.
///
/// Per session, assigning the link and forwarding happen under one lock, so `inner` receives each
/// session's events in `seq` order. An event `inner` refuses takes no `seq`: the chain is the
/// record of what was kept, and the refusal is the caller's to log and count
/// (`audit_events_dropped`). A session's state is dropped [`DEFAULT_ENDED_GRACE`] after its
/// `SessionEnded`. After a restart, [`ChainingSink::resume`] continues chains from the heads the
/// spool persisted ([`crate::audit::spool::Spool::chain_heads`]).
pub struct ChainingSink<S> {
    inner: S,
    chains: Mutex<Chains>,
    grace: Duration,
}

#[derive(Default)]
struct Chains {
    heads: HashMap<SessionId, Arc<Mutex<ChainHead>>>,
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
            .map(|(id, head)| (id, Arc::new(Mutex::new(head))))
            .collect();
        Self {
            inner,
            chains: Mutex::new(Chains {
                heads,
                ended: VecDeque::new(),
            }),
            grace: DEFAULT_ENDED_GRACE,
        }
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
        chains.heads.get(session).map(|head| lock(head).clone())
    }

    fn session_head(&self, session: &SessionId) -> Arc<Mutex<ChainHead>> {
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
            Arc::new(Mutex::new(ChainHead {
                seq: 0,
                hash: GENESIS_HASH.to_owned(),
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
        let head = self.session_head(&session);
        {
            let mut head = lock(&head);
            event.seq = head.seq + 1;
            event.prev_hash = head.hash.clone();
            event.hash = event_hash(&event)?;
            let next = ChainHead {
                seq: event.seq,
                hash: event.hash.clone(),
            };
            self.inner.record(event)?;
            *head = next;
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
            .finish_non_exhaustive()
    }
}
