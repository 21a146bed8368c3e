//! Closing a session: the local proxy stopped, the kubeconfig removed, the session ended in KMS
//! and, when it used its tunnel, its record awaited; and the same, best effort, when an
//! [`AccessSession`] is dropped instead.

use std::io;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{AccessError, AccessSession, AccessSummary};
use crate::kms::client::KmsError;
use crate::local::LocalProxyError;
use crate::session::{SessionStatus, SessionView};

/// How long the local proxy gets to drain when the session closes.
const PROXY_STOP_TIMEOUT: Duration = Duration::from_secs(3);
/// How long `close` waits, after ending a session that used its tunnel, for the gateway to
/// deliver the session's record to the control plane.
const RECORD_WAIT: Duration = Duration::from_secs(5);
/// How often the control plane is asked meanwhile.
const RECORD_POLL: Duration = Duration::from_millis(100);

impl AccessSession {
    /// Stops the local proxy, removes the kubeconfig and ends the session in the KMS (if still
    /// active), then, if the session used its tunnel, waits (at most 5 s) until the gateway has
    /// delivered the session's record up to its signed end
    /// ([`SessionBroker::record_complete`](super::SessionBroker::record_complete)), so that its history read right after is complete.
    /// Every step runs even when an earlier one fails; the first failure is returned.
    pub async fn close(mut self) -> Result<AccessSummary, AccessError> {
        let proxy = self.stop_proxy().await;
        let removed = match self.kubeconfig.take() {
            Some(installed) => installed.remove(),
            None => Ok(()),
        };
        self.end_requested = true;
        let ended = self.end_in_kms().await;
        let duration = self.started.elapsed();
        let session = ended?;
        let record_complete = !self.dialled.load(Ordering::Relaxed) || self.wait_for_record().await;
        removed?;
        proxy?;
        Ok(AccessSummary {
            session,
            duration,
            record_complete,
        })
    }

    /// Asks the broker until it holds the session's complete record, at most [`RECORD_WAIT`].
    async fn wait_for_record(&self) -> bool {
        let wait = async {
            loop {
                match self.broker.record_complete(self.id()).await {
                    Ok(true) => return,
                    Ok(false) => {}
                    Err(error) => tracing::debug!(%error, "cannot ask about the session's record"),
                }
                tokio::time::sleep(RECORD_POLL).await;
            }
        };
        let complete = tokio::time::timeout(RECORD_WAIT, wait).await.is_ok();
        if !complete {
            tracing::warn!(session = %self.id(), "the gateway has not delivered the session's \
                whole record to KMS yet; its last commands may show a moment later");
        }
        complete
    }

    async fn stop_proxy(&mut self) -> Result<(), AccessError> {
        self.stop.cancel();
        let Some(mut proxy) = self.proxy.take() else {
            return Ok(());
        };
        match tokio::time::timeout(PROXY_STOP_TIMEOUT, &mut proxy).await {
            Ok(Ok(result)) => result.map_err(AccessError::from),
            Ok(Err(join_error)) => Err(AccessError::Proxy(LocalProxyError::Io(io::Error::other(
                join_error.to_string(),
            )))),
            Err(_) => {
                proxy.abort();
                Ok(())
            }
        }
    }

    /// Ends the session; one that already ended (expiry, termination) is reported as it is.
    async fn end_in_kms(&self) -> Result<SessionView, AccessError> {
        match self.broker.end_session(self.id()).await {
            Ok(view) => Ok(view),
            Err(error @ KmsError::Api { .. }) => {
                match self.broker.session_status(self.id()).await {
                    Ok(view) if view.session.status != SessionStatus::Active => Ok(view),
                    _ => Err(error.into()),
                }
            }
            Err(error) => Err(error.into()),
        }
    }
}

impl Drop for AccessSession {
    fn drop(&mut self) {
        // Also reached when `close` itself was cancelled half-way: finish what it did not.
        self.stop.cancel();
        if let Some(installed) = self.kubeconfig.take() {
            if let Err(e) = installed.remove() {
                tracing::warn!(error = %e, "could not remove the session kubeconfig");
            }
        }
        if self.end_requested {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (broker, id) = (self.broker.clone(), self.id().clone());
            runtime.spawn(async move {
                if let Err(e) = broker.end_session(&id).await {
                    tracing::warn!(session = %id, error = %e, "could not end the session");
                }
            });
        }
    }
}
