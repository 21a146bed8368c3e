//! How sessions end (security invariant 9, docs/security.md): one at its owner's or an administrator's word, or all those a
//! revocation, a lapsed grant ([`end_lapsed_grants`], the reaper's first step), the reaper or a
//! lost right affects. Every end is recorded the same way
//! ([`record_ended`]): the status change gateways follow is published (their tunnels and streams
//! are cut within a second), the end is counted and logged, and the heads of the sessions whose
//! gateway already delivered its signed end are signed (`sealing.rs`).

use std::time::SystemTime;

use super::sealing::seal_delivered;
use crate::kms::api::SessionView;
use crate::server::edge::callers::InProject;
use crate::server::edge::error::ApiError;
use crate::server::edge::state::{now, AppState};
use crate::server::edge::views;
use crate::server::store::{ActiveSessions, EndedSessions, StoreError};
use crate::session::{EndCause, SessionId, SessionStatus};

/// Ends the active sessions `which` matches for `cause`, wakes the gateways, counts and logs
/// them. Returns how many ended.
pub(crate) async fn end_sessions(
    state: &AppState,
    which: ActiveSessions,
    cause: EndCause,
    by: &str,
) -> Result<usize, ApiError> {
    let ended = state.store.end_sessions(&which, cause, now()).await?;
    record_ended(state, &ended, cause, by).await;
    Ok(ended.ids.len())
}

/// Publishes, counts and logs sessions ended for `cause`, and signs the heads of those whose
/// gateway had already delivered its signed end (it stopped first): KMS signs a head when the
/// record completes, not later from whatever the database then says.
pub(crate) async fn record_ended(
    state: &AppState,
    ended: &EndedSessions,
    cause: EndCause,
    by: &str,
) {
    state.feed.publish(ended.seq);
    for id in &ended.ids {
        state.metrics.session_ended(cause);
        tracing::info!(session = %id, %cause, %by, "session ended");
    }
    if seal_delivered(state, &ended.ids).await.is_err() {
        tracing::warn!(
            "a head KMS could not sign now is signed when the gateway delivers the \
            session's end again; until then verify reports it missing"
        );
    }
}

/// Terminates the project's session `id` on behalf of `admin` (a project administrator).
pub(crate) async fn terminate(
    state: &AppState,
    admin: &InProject,
    id: &str,
) -> Result<SessionView, ApiError> {
    if !admin.is_admin() {
        return Err(admin.refused("terminating sessions: it takes a project administrator"));
    }
    let not_found = || ApiError::not_found(format!("session {id} not found"));
    let record = match state.store.session(&SessionId::new(id)).await {
        Ok(record) if record.project_id == admin.project.id => record,
        Ok(_) | Err(StoreError::NotFound(_)) => return Err(not_found()),
        Err(e) => return Err(e.into()),
    };
    end_session(
        state,
        &record.session.id,
        EndCause::Termination,
        &admin.user.name,
    )
    .await
}

/// Ends the session for `cause`, recording who did it; the answer is the session as it is now.
pub(crate) async fn end_session(
    state: &AppState,
    id: &SessionId,
    cause: EndCause,
    by: &str,
) -> Result<SessionView, ApiError> {
    let now = now();
    // A session that expired with its grant ended because the grant expired, even when its
    // client (cut by the gateway at that instant) asks to end it before the reaper records it.
    if let Ok(record) = state.store.session(id).await {
        let session = &record.session;
        let lapsed = session.status == SessionStatus::Active && session.expires_at <= now;
        if lapsed && record.grant_id.is_some() {
            end_lapsed_grants(state, now).await;
        }
    }
    let update = state.store.end_session(id, cause, now).await?;
    if let Some(seq) = update.seq {
        let ended = EndedSessions {
            ids: vec![id.clone()],
            seq: Some(seq),
        };
        let cause = update.record.end_cause.unwrap_or(cause);
        record_ended(state, &ended, cause, by).await;
    }
    Ok(views::session(&update.record, now))
}

/// Ends the sessions of grants that expired or were revoked. Runs before plain expiry, so a
/// session that expires with its grant ends as `grant_expired` (and before a user's end of a
/// session past its expiry: [`end_session`]).
pub(crate) async fn end_lapsed_grants(state: &AppState, now: SystemTime) {
    let lapsed = match state.store.lapsed_grants(now).await {
        Ok(lapsed) => lapsed,
        Err(e) => {
            tracing::warn!(error = %e, "finding expired grants failed");
            return;
        }
    };
    for grant in lapsed {
        // An expired grant's sessions end as of its expiry, the instant the gateway cut those
        // set to expire with it.
        let (cause, at) = match (&grant.revoked, grant.expires_at) {
            (Some(_), _) | (None, None) => (EndCause::GrantRevoked, now),
            (None, Some(until)) => (EndCause::GrantExpired, until.min(now)),
        };
        let which = ActiveSessions {
            grant_id: Some(grant.id),
            ..ActiveSessions::default()
        };
        match state.store.end_sessions(&which, cause, at).await {
            Ok(ended) => record_ended(state, &ended, cause, "kms").await,
            Err(e) => tracing::warn!(error = %e, "ending sessions of an expired grant failed"),
        }
    }
}
