//! Appending audit events, on every engine: appends to one session run one after another, each
//! linking to what the previous one stored.

use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};

use super::*;

/// How long a test waits for something that should happen at once; only a failing run waits it.
const PATIENCE: Duration = Duration::from_secs(30);

/// Events `seqs` of `session`, chained by their `seq` only (the store does not read hashes).
pub(crate) fn records(session: &SessionId, seqs: RangeInclusive<u64>) -> Vec<EventRecord> {
    seqs.map(|seq| EventRecord {
        id: format!("{session}-event-{seq}"),
        session_id: session.clone(),
        seq,
        hash: format!("hash-{seq}"),
        json: format!("{{\"seq\":{seq}}}"),
    })
    .collect()
}

fn span(session: &SessionId, events: &[EventRecord]) -> EventSpan {
    EventSpan {
        session_id: session.clone(),
        first_seq: events.first().map_or(0, |e| e.seq),
        last_seq: events.last().map_or(0, |e| e.seq),
    }
}

/// Appends `events` (one session's, by `seq`) as they are, with no chain check.
pub(crate) async fn append_as_given(
    store: &dyn Store,
    events: &[EventRecord],
    at: SystemTime,
) -> Result<u64, StoreError> {
    let Some(first) = events.first() else {
        return Ok(0);
    };
    let spans = [span(&first.session_id, events)];
    store
        .append_events(&spans, at, &|_, _, _| Ok(events.to_vec()))
        .await
}

/// Ingest's rule in short: events at or below the head are resent (skipped), the rest must
/// continue the head one by one.
fn chained(
    events: &[EventRecord],
    head: Option<EventLink>,
) -> Result<Vec<EventRecord>, StoreError> {
    let stored = head.map_or(0, |h| h.seq);
    let mut at = stored;
    let mut new = Vec::new();
    for event in events.iter().filter(|e| e.seq > stored) {
        if event.seq != at + 1 {
            return Err(StoreError::Conflict(format!(
                "seq {} cannot be linked yet: stored up to seq {at}",
                event.seq
            )));
        }
        at = event.seq;
        new.push(event.clone());
    }
    Ok(new)
}

/// The situation of two replicas handling one gateway's consecutive uploads of a session: the
/// upload of 11–15 is still inside its transaction on `first` when 16–20 reaches `second`. The
/// second must wait for the first to commit and then link to it, not be refused for a gap.
pub(crate) async fn an_append_waits_for_the_one_before_it_and_links_to_it(store: Arc<dyn Store>) {
    appends_on(store.clone(), store).await;
}

/// [`an_append_waits_for_the_one_before_it_and_links_to_it`] with each append on its own store
/// (PostgreSQL replicas sharing one database).
pub(crate) async fn appends_on(first: Arc<dyn Store>, second: Arc<dyn Store>) {
    let f = fixture(first.clone()).await;
    let session = f.session(1, 100).await.record.session.id;
    let events = records(&session, 1..=20);
    assert_eq!(
        append_as_given(&*first, &events[..10], t(2)).await.unwrap(),
        10
    );

    let (holding, held) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let (holding, released) = (Mutex::new(holding), Mutex::new(released));
    let batch = events[10..15].to_vec();
    let on_first = tokio::spawn(async move {
        let spans = [span(&batch[0].session_id, &batch)];
        let link = |_: &SessionId, head: Option<EventLink>, _: &[EventLink]| {
            // Inside the transaction, holding the session's lock: tell the test, wait for it.
            let _ = holding.lock().map(|tx| tx.send(()));
            let _ = released.lock().map(|rx| rx.recv_timeout(PATIENCE));
            chained(&batch, head)
        };
        first.append_events(&spans, t(3), &link).await
    });
    tokio::task::spawn_blocking(move || held.recv_timeout(PATIENCE))
        .await
        .unwrap()
        .expect("the first append reaches its chain check");

    let calls = Arc::new(AtomicUsize::new(0));
    let seen_head = Arc::new(Mutex::new(None));
    let batch = events[15..].to_vec();
    let on_second = tokio::spawn({
        let (calls, seen_head) = (calls.clone(), seen_head.clone());
        async move {
            let spans = [span(&batch[0].session_id, &batch)];
            let link = |_: &SessionId, head: Option<EventLink>, _: &[EventLink]| {
                calls.fetch_add(1, Ordering::SeqCst);
                *seen_head.lock().unwrap() = head.as_ref().map(|h| h.seq);
                chained(&batch, head)
            };
            second.append_events(&spans, t(4), &link).await
        }
    });
    // Time enough for an append that does not wait to read the head and run its check.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "the second append checked its chain while the first still held the session"
    );
    release.send(()).unwrap();
    assert_eq!(on_first.await.unwrap().unwrap(), 5);
    assert_eq!(
        on_second
            .await
            .unwrap()
            .expect("the second append links to the first"),
        5
    );
    assert_eq!(*seen_head.lock().unwrap(), Some(15));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(f.store.session_events(&session).await.unwrap(), events);
}

/// A gateway resending an upload to another replica while the first attempt is in flight: both
/// succeed in whichever order they take the lock, and each event is stored once.
pub(crate) async fn the_same_upload_appended_twice_at_once_is_stored_once(store: Arc<dyn Store>) {
    let f = fixture(store.clone()).await;
    let session = f.session(1, 100).await.record.session.id;
    let events = records(&session, 1..=30);
    let mut attempts = Vec::new();
    for _ in 0..2 {
        let (store, events) = (store.clone(), events.clone());
        attempts.push(tokio::spawn(async move {
            let spans = [span(&events[0].session_id, &events)];
            store
                .append_events(&spans, t(2), &|_, head, _| chained(&events, head))
                .await
        }));
    }
    let mut stored = Vec::new();
    for attempt in attempts {
        stored.push(attempt.await.unwrap().unwrap());
    }
    stored.sort_unstable();
    assert_eq!(
        stored,
        [0, 30],
        "one attempt stores all, the other finds them stored"
    );
    assert_eq!(store.session_events(&session).await.unwrap(), events);

    // A different event at a stored seq is refused by the store itself, and nothing is stored.
    let forged = EventRecord {
        id: "forged".to_owned(),
        ..events[4].clone()
    };
    let err = append_as_given(&*store, &[forged], t(3)).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert_eq!(store.session_events(&session).await.unwrap().len(), 30);
}
