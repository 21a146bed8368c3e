//! `LISTEN` on the change channel: one connection per replica, outside the pool, forwarding each
//! notified sequence number to the replica's change feed.

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::mpsc;

use super::{db_error, CHANGES_CHANNEL};
use crate::server::store::StoreError;

/// Notifications buffered for a slow feed; beyond that they are dropped (the feed only needs the
/// newest, and polls re-read the log anyway).
const BUFFER: usize = 64;

/// Starts listening; the task ends when the receiver is dropped or the listener fails for good.
///
/// `PgListener::recv` reconnects by itself after a lost connection; notifications sent meanwhile
/// are lost, which costs a waiting poll at most its one-second re-read.
pub(super) async fn listen(pool: &PgPool) -> Result<mpsc::Receiver<u64>, StoreError> {
    let mut listener = PgListener::connect_with(pool).await.map_err(db_error)?;
    listener.listen(CHANGES_CHANNEL).await.map_err(db_error)?;
    let (tx, rx) = mpsc::channel(BUFFER);
    tokio::spawn(async move {
        loop {
            let notification = tokio::select! {
                () = tx.closed() => break,
                received = listener.recv() => received,
            };
            match notification {
                Ok(notification) => match notification.payload().parse::<u64>() {
                    Ok(seq) => {
                        // A full buffer means the feed is behind: this number adds nothing.
                        let _ = tx.try_send(seq);
                    }
                    Err(_) => tracing::warn!(
                        payload = notification.payload(),
                        "ignoring a malformed change notification"
                    ),
                },
                Err(e) => {
                    tracing::warn!(error = %e, "listening for session changes failed");
                    break;
                }
            }
        }
    });
    Ok(rx)
}
