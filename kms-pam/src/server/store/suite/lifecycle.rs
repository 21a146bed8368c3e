//! Enrollment and session life, on every engine.

use super::*;
use crate::kms::api::{GatewayReach, RelayLink};

pub(super) async fn enrollment_tokens_are_single_use_and_expire(store: Arc<dyn Store>) {
    let (_, enrollment) = issue_token("kmse_").unwrap();
    let new = NewGateway {
        name: "gw".into(),
        enrollment: enrollment.clone(),
        enrollment_expires_at: t(3600),
        project_ids: Vec::new(),
        now: t(0),
    };
    let gateway = store.create_gateway(new).await.unwrap();
    assert!(!gateway.enrolled);
    let late = store.check_enrollment("gw", &enrollment, t(3600)).await;
    assert!(
        matches!(late, Err(StoreError::NotFound(_))),
        "expired token"
    );
    let wrong_name = store.check_enrollment("other", &enrollment, t(1)).await;
    assert!(wrong_name.is_err());
    store
        .check_enrollment("gw", &enrollment, t(1))
        .await
        .unwrap();
    let (_, token) = issue_token("kmsg_").unwrap();
    let finish = Enrollment {
        gateway_id: gateway.id.clone(),
        enrollment: enrollment.clone(),
        token: token.clone(),
        address: "gw.example:8443".into(),
        now: t(2),
    };
    let enrolled = store.complete_enrollment(finish.clone()).await.unwrap();
    assert!(enrolled.enrolled);
    assert_eq!(enrolled.address.as_deref(), Some("gw.example:8443"));
    assert_eq!(store.gateway_by_token(&token).await.unwrap().id, gateway.id);
    assert!(
        store
            .check_enrollment("gw", &enrollment, t(3))
            .await
            .is_err(),
        "spent"
    );
    let replay = store.complete_enrollment(finish).await;
    assert!(matches!(replay, Err(StoreError::Conflict(_))));
    assert_eq!(
        enrolled.reach,
        GatewayReach::default(),
        "directly until told"
    );
    let reach = GatewayReach {
        direct: false,
        relays: vec![
            RelayLink {
                url: "relay-1.example:443".into(),
                connected: true,
            },
            RelayLink {
                url: "[2001:db8::7]:443".into(),
                connected: false,
            },
        ],
    };
    store
        .record_heartbeat(&gateway.id, "gw2:8443", &reach, t(10))
        .await
        .unwrap();
    let beat = store.gateway_by_name("gw").await.unwrap();
    assert_eq!(
        (beat.address.as_deref(), beat.last_heartbeat, &beat.reach),
        (Some("gw2:8443"), Some(t(10)), &reach)
    );
    assert_eq!(store.gateways().await.unwrap()[0].reach, reach);
    let unknown = store
        .record_heartbeat("no-such-gateway", "gw:1", &reach, t(11))
        .await;
    assert!(matches!(unknown, Err(StoreError::NotFound(_))));

    // A new instance enrolls after a revocation: what the old one reported is forgotten.
    store.revoke_gateway(&gateway.id, t(20)).await.unwrap();
    assert_eq!(store.gateway_by_id(&gateway.id).await.unwrap().reach, reach);
    let (_, again) = issue_token("kmse_").unwrap();
    store
        .renew_enrollment(&gateway.id, &again, t(3600), t(21))
        .await
        .unwrap();
    let (_, token) = issue_token("kmsg_").unwrap();
    let renewed = store
        .complete_enrollment(Enrollment {
            gateway_id: gateway.id.clone(),
            enrollment: again,
            token,
            address: "gw3.example:8443".into(),
            now: t(22),
        })
        .await
        .unwrap();
    assert_eq!(renewed.reach, GatewayReach::default());
}

pub(super) async fn a_session_keeps_where_it_was_requested_from(store: Arc<dyn Store>) {
    let f = fixture(store).await;
    let created = f.session(0, 100).await.record;
    assert_eq!(created.client_address.as_deref(), Some("192.0.2.7"));
    assert_eq!(created.user_agent.as_deref(), Some("kms-pam/0.1.0"));
    let id = created.session.id.clone();
    let ended = f
        .store
        .end_session(&id, EndCause::User, t(5))
        .await
        .unwrap()
        .record;
    assert_eq!(ended.client_address.as_deref(), Some("192.0.2.7"));
    assert_eq!(ended.user_agent.as_deref(), Some("kms-pam/0.1.0"));
    let read = f.store.session(&id).await.unwrap();
    assert_eq!(read, ended);
}

pub(super) async fn session_changes_are_logged_in_order(store: Arc<dyn Store>) {
    let f = fixture(store).await;
    assert_eq!(f.store.latest_seq().await.unwrap(), 0);
    let a = f.session(0, 100).await;
    let b = f.session(0, 10).await;
    let (a_id, b_id) = (a.record.session.id.clone(), b.record.session.id.clone());
    assert!(b.seq > a.seq);
    let ended = f
        .store
        .end_session(&a_id, EndCause::User, t(5))
        .await
        .unwrap();
    assert_eq!(ended.record.session.status, SessionStatus::Ended);
    assert_eq!(ended.record.end_cause, Some(EndCause::User));
    assert_eq!(ended.record.session.ended_at, Some(t(5)));
    let again = f
        .store
        .end_session(&a_id, EndCause::Termination, t(6))
        .await
        .unwrap();
    assert_eq!(
        (again.seq, again.record),
        (None, ended.record),
        "ending twice changes nothing"
    );
    assert_eq!(f.store.expire_sessions(t(9)).await.unwrap().seq, None);
    let expired = f.store.expire_sessions(t(10)).await.unwrap();
    assert_eq!(expired.ids, std::slice::from_ref(&b_id));
    let expired_seq = expired.seq;
    let b_now = f.store.session(&b_id).await.unwrap();
    assert_eq!(b_now.session.status, SessionStatus::Expired);
    assert_eq!(b_now.session.ended_at, Some(t(10)));
    let latest = f.store.latest_seq().await.unwrap();
    assert_eq!(Some(latest), expired_seq);
    let log = f
        .store
        .changes(&f.gateway.id, 0, latest, 100)
        .await
        .unwrap();
    let statuses: Vec<_> = log
        .iter()
        .map(|c| (c.session_id.clone(), c.status))
        .collect();
    assert_eq!(
        statuses,
        vec![
            (a_id.clone(), SessionStatus::Active),
            (b_id.clone(), SessionStatus::Active),
            (a_id, SessionStatus::Ended),
            (b_id, SessionStatus::Expired),
        ]
    );
    assert!(log.windows(2).all(|w| w[0].seq < w[1].seq));
    let tail = f
        .store
        .changes(&f.gateway.id, log[1].seq, latest, 1)
        .await
        .unwrap();
    assert_eq!(tail, vec![log[2].clone()]);
    assert!(f
        .store
        .changes("other-gateway", 0, latest, 100)
        .await
        .unwrap()
        .is_empty());
}

pub(super) async fn ending_a_session_past_expiry_records_expiry_and_filters_work(
    store: Arc<dyn Store>,
) {
    let f = fixture(store).await;
    let s = f.session(0, 10).await.record.session.id;
    let live = f.session(1, 100).await.record.session.id;
    let ended = f
        .store
        .end_session(&s, EndCause::User, t(20))
        .await
        .unwrap()
        .record;
    assert_eq!(ended.session.status, SessionStatus::Expired);
    assert_eq!(ended.end_cause, Some(EndCause::Expiry));
    let active = SessionFilter {
        active_only: true,
        ..SessionFilter::default()
    };
    let listed = f.store.sessions(&f.project.id, &active).await.unwrap();
    assert_eq!(
        listed.iter().map(|r| &r.session.id).collect::<Vec<_>>(),
        vec![&live]
    );
    let all = f
        .store
        .sessions(&f.project.id, &SessionFilter::default())
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].session.id, live, "newest first");
    let bob = SessionFilter {
        user: Some(SessionOwner::User("bob".into())),
        ..SessionFilter::default()
    };
    assert!(f
        .store
        .sessions(&f.project.id, &bob)
        .await
        .unwrap()
        .is_empty());
    let prod = SessionFilter {
        resource: Some("prod".into()),
        ..SessionFilter::default()
    };
    assert_eq!(
        f.store.sessions(&f.project.id, &prod).await.unwrap().len(),
        2
    );
    let unknown = f
        .store
        .end_session(&SessionId::new("nope"), EndCause::User, t(1))
        .await;
    assert!(matches!(unknown, Err(StoreError::NotFound(_))));
}

/// Each revocation, once committed, keeps the session it would have ended from being stored at
/// all: the route checked before, but the store checks again as it writes.
pub(super) async fn a_session_is_stored_only_while_what_allows_it_holds(store: Arc<dyn Store>) {
    let f = fixture(store.clone()).await;
    let refused = |result: Result<SessionUpdate, StoreError>, what: &str| {
        assert!(
            matches!(result, Err(StoreError::Conflict(_))),
            "{what}: {:?}",
            result.map(|u| u.record.session.id)
        );
    };
    let (bob, grant) = f.granted_member("bob").await;
    f.try_session(&bob, Some(&grant.id)).await.unwrap();
    refused(f.try_session(&bob, None).await, "a member without a grant");

    store.delete_grant(&f.project.id, &grant.id).await.unwrap();
    refused(f.try_session(&bob, Some(&grant.id)).await, "grant deleted");

    let grant = f.grant(&bob).await;
    let project = &f.project.id;
    store
        .set_member(project, &bob.id, ProjectRole::Auditor, t(2))
        .await
        .unwrap();
    refused(f.try_session(&bob, Some(&grant.id)).await, "now an auditor");
    store
        .set_member(project, &bob.id, ProjectRole::Member, t(2))
        .await
        .unwrap();
    f.try_session(&bob, Some(&grant.id)).await.unwrap();
    store.remove_member(project, &bob.id).await.unwrap();
    refused(
        f.try_session(&bob, Some(&grant.id)).await,
        "membership removed",
    );

    // Alice administers the project: she needs no grant, until she is demoted.
    f.try_session(&f.user, None).await.unwrap();
    store
        .set_user_disabled(&f.user.id, Some(t(3)))
        .await
        .unwrap();
    refused(f.try_session(&f.user, None).await, "user disabled");
    store.set_user_disabled(&f.user.id, None).await.unwrap();
    f.try_session(&f.user, None).await.unwrap();
    store
        .set_member(project, &f.user.id, ProjectRole::Member, t(4))
        .await
        .unwrap();
    refused(f.try_session(&f.user, None).await, "demoted to member");
    store
        .set_member(project, &f.user.id, ProjectRole::Admin, t(4))
        .await
        .unwrap();

    // An organisation administrator needs no membership, until deleted.
    let (_, hash) = issue_token("kmsu_").unwrap();
    let new = NewUser {
        name: "dave".into(),
        admin: true,
        token: hash,
        now: t(0),
    };
    let dave = store.create_user(new).await.unwrap();
    f.try_session(&dave, None).await.unwrap();
    store.delete_user(&dave.id, t(5)).await.unwrap();
    refused(f.try_session(&dave, None).await, "user deleted");

    // A request that came with a token rotated away since.
    let (_, old) = issue_token("kmsu_").unwrap();
    let new = NewUser {
        name: "erin".into(),
        admin: true,
        token: old.clone(),
        now: t(0),
    };
    let erin = store.create_user(new).await.unwrap();
    let with_token = |token: &TokenHash| NewSessionRecord {
        token: Some(token.clone()),
        ..f.new_session(&erin, None, 1, 100)
    };
    store.create_session(with_token(&old)).await.unwrap();
    let (_, rotated) = issue_token("kmsu_").unwrap();
    store.rotate_user_token(&erin.id, &rotated).await.unwrap();
    refused(
        store.create_session(with_token(&old)).await,
        "token rotated",
    );
    store.create_session(with_token(&rotated)).await.unwrap();

    store.revoke_gateway(&f.gateway.id, t(6)).await.unwrap();
    refused(f.try_session(&f.user, None).await, "gateway revoked");
}

/// A start after an outage gives the sessions held until it began one more abandon window; a
/// start while clients were polling, and sessions abandoned before the outage, get none.
pub(super) async fn only_an_outage_postpones_abandonment_and_only_once(store: Arc<dyn Store>) {
    let f = fixture(store.clone()).await;
    let window = Duration::from_secs(30);
    let held = f.session(60, 5000).await.record.session.id;
    let dropped = f.session(60, 5000).await.record.session.id;
    store.touch_session(&held, t(100)).await.unwrap();
    let seen = |id: SessionId| {
        let store = store.clone();
        async move { store.session(&id).await.unwrap().last_seen_at }
    };
    // A quick restart: a client was seen 20 s ago.
    assert_eq!(store.grace_after_outage(t(120), window).await.unwrap(), 0);
    assert_eq!(seen(held.clone()).await, t(100));
    // Back after 15 minutes: the session held until then gets a fresh heartbeat, the one
    // already silent for 40 s when the heartbeats stopped does not.
    assert_eq!(store.grace_after_outage(t(1000), window).await.unwrap(), 1);
    assert_eq!(seen(held.clone()).await, t(1000));
    assert_eq!(seen(dropped.clone()).await, t(60));
    // Restarting again (another replica, a crash loop) does not restart the window.
    assert_eq!(store.grace_after_outage(t(1020), window).await.unwrap(), 0);
    assert_eq!(seen(held).await, t(1000));
}
