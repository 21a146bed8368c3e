//! Which sessions a caller sees: their own, or every session of the project for its
//! administrators and auditors. Somebody else's session is refused exactly like one that does
//! not exist. Read by its owner, a session also gets its heartbeat here (`reaper.rs`).

use crate::kms::api::ProjectRole;
use crate::server::edge::callers::{project_not_found, InProject, SessionCaller};
use crate::server::edge::error::ApiError;
use crate::server::edge::state::{now, AppState};
use crate::server::store::{SessionOwner, SessionRecord, StoreError};
use crate::session::{SessionId, SessionStatus};

/// Whose sessions `caller` sees when asking for `asked`'s (everybody's when `None`): `Some` of
/// the owner filter to apply, or `None` when there is nothing to show. Members see only their
/// own sessions; administrators and auditors anybody's. Users are matched by id: a name given
/// to a new user after its former holder was deleted does not bring the old sessions with it
/// (those stay the deleted user's, found by the name when no live user has it).
pub(crate) async fn whose_sessions(
    state: &AppState,
    caller: &InProject,
    asked: Option<String>,
) -> Result<Option<Option<SessionOwner>>, StoreError> {
    if !caller.reads_every_session() {
        let own = &caller.user.name;
        if asked
            .as_ref()
            .is_some_and(|asked| !asked.eq_ignore_ascii_case(own))
        {
            return Ok(None);
        }
        return Ok(Some(Some(SessionOwner::User(caller.user.id.clone()))));
    }
    Ok(Some(match asked {
        // Names are unique regardless of case among live users.
        Some(asked) => match state.store.user_by_name(&asked).await {
            Ok(user) => Some(SessionOwner::User(user.id)),
            Err(StoreError::NotFound(_)) => Some(SessionOwner::Deleted(asked)),
            // The store could not say: an error, not somebody else's sessions.
            Err(e) => return Err(e),
        },
        None => None,
    }))
}

/// The session, if the caller may see it: their own, or any of the project for its
/// administrators and auditors. Read by its owner, it also counts as the session's heartbeat
/// (`pam access` reads it every second; see `reaper.rs`).
pub(crate) async fn visible_session(
    state: &AppState,
    caller: &SessionCaller,
    id: &str,
) -> Result<SessionRecord, ApiError> {
    let record = readable_session(state, caller, id).await?;
    let owner = record.user_id == caller.user.id;
    if owner && record.session.status == SessionStatus::Active {
        state.store.touch_session(&record.session.id, now()).await?;
    }
    Ok(record)
}

/// The session, if the caller may see it (as [`visible_session`]), without counting the read
/// as the session's heartbeat: the web console reads sessions, it does not hold them open.
pub(crate) async fn readable_session(
    state: &AppState,
    caller: &SessionCaller,
    id: &str,
) -> Result<SessionRecord, ApiError> {
    let not_found = || ApiError::not_found(format!("session {id} not found"));
    let record = match state.store.session(&SessionId::new(id)).await {
        Ok(record) => record,
        Err(StoreError::NotFound(_)) if caller.role.is_none() => {
            return Err(project_not_found(&caller.project.name))
        }
        Err(StoreError::NotFound(_)) => return Err(not_found()),
        Err(e) => return Err(e.into()),
    };
    let owner = record.user_id == caller.user.id;
    let reader = matches!(caller.role, Some(ProjectRole::Admin | ProjectRole::Auditor));
    if record.project_id != caller.project.id || !(owner || reader) {
        return Err(match caller.role {
            None => project_not_found(&caller.project.name),
            Some(_) => not_found(),
        });
    }
    Ok(record)
}
