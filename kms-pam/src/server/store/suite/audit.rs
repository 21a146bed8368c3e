//! Gateways' audit keys, KMS's signed heads and recording policies, on every engine.

use super::*;

pub(super) async fn audit_keys_heads_and_recording_policies_are_kept(store: Arc<dyn Store>) {
    let f = fixture(store.clone()).await;
    let gateway = &f.gateway.id;
    assert_eq!(store.gateway_audit_key(gateway).await.unwrap(), None);
    assert!(store
        .add_gateway_audit_key(gateway, "k1", "e1", t(1))
        .await
        .unwrap());
    assert!(
        !store
            .add_gateway_audit_key(gateway, "k2", "e2", t(2))
            .await
            .unwrap(),
        "registered once"
    );
    assert_eq!(
        store.gateway_audit_key(gateway).await.unwrap(),
        Some(("k1".to_owned(), Some("e1".to_owned())))
    );
    store
        .set_gateway_audit_key(gateway, "k3", "e3", t(3))
        .await
        .unwrap();
    assert_eq!(
        store.gateway_audit_keys().await.unwrap(),
        [(gateway.clone(), "k3".to_owned())]
    );
    assert_eq!(store.unendorsed_gateway_audit_keys().await.unwrap(), []);
    assert!(
        !store
            .endorse_gateway_audit_key(gateway, "k3", "again")
            .await
            .unwrap(),
        "an endorsed key keeps its endorsement"
    );

    let session = f.session(1, 100).await.record.session.id;
    let bound = Some(SessionKeyRecord {
        gateway_key: "gk".into(),
        ticket: "ticket".into(),
    });
    assert_eq!(
        store.session_key(&session).await.unwrap(),
        bound,
        "kept with the session"
    );
    let mut unbound = f.new_session(&f.user, None, 1, 100);
    unbound.key = None;
    let unbound = store
        .create_session(unbound)
        .await
        .unwrap()
        .record
        .session
        .id;
    assert_eq!(store.session_key(&unbound).await.unwrap(), None);
    assert_eq!(store.session_head(&session).await.unwrap(), None);
    assert_eq!(store.last_event(&session).await.unwrap(), None);
    let events: Vec<EventRecord> = (1..=2)
        .map(|seq| EventRecord {
            id: format!("e{seq}"),
            session_id: session.clone(),
            seq,
            hash: format!("h{seq}"),
            json: format!("{{\"seq\":{seq}}}"),
        })
        .collect();
    super::events::append_as_given(&*store, &events, t(5))
        .await
        .unwrap();
    assert_eq!(
        store.last_event(&session).await.unwrap().as_ref(),
        events.last()
    );
    let mut head = HeadRecord {
        session_id: session.clone(),
        head: "{\"last_seq\":2}".into(),
        signature: "sig".into(),
        sealed_at: t(6),
    };
    store.save_session_head(&head).await.unwrap();
    head.signature = "sig2".into();
    store.save_session_head(&head).await.unwrap();
    assert_eq!(store.session_head(&session).await.unwrap(), Some(head));

    let resource = store.resource(&f.project.id, "prod").await.unwrap().id;
    assert_eq!(store.recording_policy(&resource).await.unwrap(), None);
    let policy = RecordingPolicyRecord {
        unrecorded_streams: "allow".into(),
        max_bytes: Some(4096),
        max_input_bytes: None,
    };
    store
        .set_recording_policy(&resource, &policy)
        .await
        .unwrap();
    assert_eq!(
        store.recording_policy(&resource).await.unwrap(),
        Some(policy)
    );
}
