//! Grants with a lifetime (issue 23): expiry, revocation, replacement, and the sessions that
//! neither allows.

use std::sync::Arc;

use super::{fixture, t};
use crate::kms::api::GrantStatus;
use crate::server::store::*;
use crate::session::EndCause;

pub(super) async fn a_revoked_grant_stays_listed_and_allows_no_session(store: Arc<dyn Store>) {
    let f = fixture(store).await;
    let (bob, grant) = f.granted_member("bob").await;
    let running = f.try_session(&bob, Some(&grant.id)).await.unwrap();
    assert!(f.store.lapsed_grants(t(2)).await.unwrap().is_empty());
    let project = &f.project.id;
    let revoked = f
        .store
        .revoke_grant(project, &grant.id, "alice", "moved teams", t(2))
        .await
        .unwrap();
    let by = revoked.revoked.clone().expect("revoked");
    assert_eq!(
        (by.at, by.by.as_str(), by.reason.as_str()),
        (t(2), "alice", "moved teams")
    );
    assert_eq!(revoked.status(t(2)), GrantStatus::Revoked);
    let again = f
        .store
        .revoke_grant(project, &grant.id, "alice", "x", t(3))
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    let missing = f
        .store
        .revoke_grant(project, "nope", "alice", "x", t(3))
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );
    // Listed as revoked; no new session under it; its running one is lapsed until ended.
    assert_eq!(
        f.store.grants(project, None).await.unwrap(),
        vec![revoked.clone()]
    );
    let refused = f.try_session(&bob, Some(&grant.id)).await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );
    assert_eq!(f.store.lapsed_grants(t(3)).await.unwrap(), vec![revoked]);
    let which = ActiveSessions {
        grant_id: Some(grant.id.clone()),
        ..ActiveSessions::default()
    };
    let ended = f
        .store
        .end_sessions(&which, EndCause::GrantRevoked, t(3))
        .await
        .unwrap();
    assert_eq!(ended.ids, vec![running.record.session.id]);
    assert!(f.store.lapsed_grants(t(3)).await.unwrap().is_empty());
}

pub(super) async fn a_grant_expires_and_a_new_one_replaces_a_lapsed_one(store: Arc<dyn Store>) {
    let f = fixture(store).await;
    let (bob, first) = f.granted_member("bob").await;
    let project = &f.project.id;
    let new = NewGrant {
        project_id: project.clone(),
        account_id: f.account.id.clone(),
        user_id: bob.id.clone(),
        max_duration_secs: 600,
        expires_at: Some(t(50)),
        now: t(5),
    };
    // An active grant is not replaced.
    let taken = f.store.create_grant(new.clone()).await;
    assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");
    f.store
        .revoke_grant(project, &first.id, "alice", "shorter one", t(5))
        .await
        .unwrap();
    let grant = f.store.create_grant(new.clone()).await.unwrap();
    assert_eq!(grant.expires_at, Some(t(50)));
    assert_eq!(
        f.store.grants(project, None).await.unwrap(),
        vec![grant.clone()]
    );
    assert_eq!(grant.status(t(49)), GrantStatus::Active);
    assert_eq!(grant.status(t(50)), GrantStatus::Expired);
    let at = |created| f.new_session(&bob, Some(&grant.id), created, 100);
    let running = f.store.create_session(at(10)).await.unwrap();
    let late = f.store.create_session(at(50)).await;
    assert!(matches!(late, Err(StoreError::Conflict(_))), "{late:?}");
    assert!(f.store.lapsed_grants(t(49)).await.unwrap().is_empty());
    let lapsed = f.store.lapsed_grants(t(50)).await.unwrap();
    assert_eq!(lapsed, vec![grant.clone()]);
    let found = f.store.grant_for(&f.account.id, &bob.id).await.unwrap();
    assert_eq!(found, Some(grant));
    // Expired, it gives way to a new grant as a revoked one does.
    let later = NewGrant {
        expires_at: None,
        now: t(60),
        ..new
    };
    let renewed = f.store.create_grant(later).await.unwrap();
    assert_eq!(f.store.grants(project, None).await.unwrap(), vec![renewed]);
    assert_eq!(
        running.record.session.status,
        crate::session::SessionStatus::Active
    );
}
