//! Users, grants, resources and the CA, on every engine.

use super::*;

pub(super) async fn names_are_unique_and_lookups_report_not_found(store: Arc<dyn Store>) {
    let f = fixture(store).await;
    let (_, hash) = issue_token("kmsu_").unwrap();
    let dup = f
        .store
        .create_user(NewUser {
            name: "alice".into(),
            admin: true,
            token: hash,
            now: t(1),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(dup, StoreError::Conflict(ref m) if m.contains("alice")),
        "{dup}"
    );
    let missing = f.store.user_by_name("bob").await.unwrap_err();
    assert!(matches!(missing, StoreError::NotFound(_)));
    let grant = NewGrant {
        project_id: f.project.id.clone(),
        account_id: f.account.id.clone(),
        user_id: f.user.id.clone(),
        max_duration_secs: 600,
        expires_at: None,
        now: t(1),
    };
    let created = f.store.create_grant(grant.clone()).await.unwrap();
    assert_eq!(
        (created.resource.as_str(), created.account.as_str()),
        ("prod", "admin")
    );
    assert!(matches!(
        f.store.create_grant(grant).await,
        Err(StoreError::Conflict(_))
    ));
    let found = f.store.grant_for(&f.account.id, &f.user.id).await.unwrap();
    assert_eq!(found, Some(created));
}

pub(super) async fn deleting_a_resource_removes_accounts_and_grants_but_keeps_sessions(
    store: Arc<dyn Store>,
) {
    let f = fixture(store).await;
    let grant = NewGrant {
        project_id: f.project.id.clone(),
        account_id: f.account.id.clone(),
        user_id: f.user.id.clone(),
        max_duration_secs: 600,
        expires_at: None,
        now: t(1),
    };
    f.store.create_grant(grant).await.unwrap();
    let session = f.session(1, 100).await.record;
    f.store
        .delete_resource(&f.project.id, "prod")
        .await
        .unwrap();
    assert!(f
        .store
        .accounts(&f.project.id, None)
        .await
        .unwrap()
        .is_empty());
    assert!(f
        .store
        .grants(&f.project.id, None)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(f.store.session(&session.session.id).await.unwrap(), session);
    let again = f.store.delete_resource(&f.project.id, "prod").await;
    assert!(matches!(again, Err(StoreError::NotFound(_))));
}

pub(super) async fn the_ca_is_stored_once(store: Arc<dyn Store>) {
    assert!(store.ca().await.unwrap().is_none());
    let ca =
        crate::tls::CertificateAuthority::generate("test CA", Duration::from_secs(3600)).unwrap();
    let stored = StoredCa {
        cert_pem: ca.cert_pem().to_owned(),
        key: ca.key_pem().clone(),
    };
    store.save_ca(&stored).await.unwrap();
    assert!(matches!(
        store.save_ca(&stored).await,
        Err(StoreError::Conflict(_))
    ));
    let loaded = store.ca().await.unwrap().unwrap();
    assert_eq!(loaded.cert_pem, stored.cert_pem);
    assert_eq!(loaded.key.expose_secret(), stored.key.expose_secret());
}

pub(super) async fn an_account_edit_keeps_its_token_unless_given_one(store: Arc<dyn Store>) {
    let f = fixture(store).await;
    let id = f.account.id.clone();
    let kept = f
        .store
        .update_account(AccountChange {
            id: id.clone(),
            description: Some("on-call".into()),
            max_duration_secs: 7200,
            token: None,
        })
        .await
        .unwrap();
    assert_eq!(kept.description.as_deref(), Some("on-call"));
    assert_eq!(kept.max_duration_secs, 7200);
    assert_eq!((kept.name.as_str(), kept.created_at), ("admin", t(0)));
    let token = f.store.account_token(&kept).await.unwrap();
    assert_eq!(token.expose(), SA_TOKEN, "no token given: unchanged");
    let replaced = f
        .store
        .update_account(AccountChange {
            id: id.clone(),
            description: None,
            max_duration_secs: 600,
            token: Some(Secret::new("eyJ.rotated.sig")),
        })
        .await
        .unwrap();
    assert_eq!(replaced.description, None);
    assert_eq!(replaced.max_duration_secs, 600);
    let token = f.store.account_token(&replaced).await.unwrap();
    assert_eq!(token.expose(), "eyJ.rotated.sig");
    let gone = f
        .store
        .update_account(AccountChange {
            id: "no-such-account".into(),
            description: None,
            max_duration_secs: 600,
            token: None,
        })
        .await;
    assert!(matches!(gone, Err(StoreError::NotFound(_))), "{gone:?}");
}

/// Issue 28 point 6: assignments and allow-lists are kept alike on every engine.
pub(super) async fn gateway_assignments_and_allow_lists_are_kept(store: Arc<dyn Store>) {
    let f = fixture(store).await;
    let other = f.store.create_project("team-a", t(1)).await.unwrap();
    let (_, enrollment) = issue_token("kmse_").unwrap();
    let scoped = f
        .store
        .create_gateway(NewGateway {
            name: "gw-a".into(),
            enrollment,
            enrollment_expires_at: t(3600),
            project_ids: vec![other.id.clone()],
            now: t(1),
        })
        .await
        .unwrap();
    assert!(f.store.gateway_serves(&scoped.id, &other.id).await.unwrap());
    assert!(!f
        .store
        .gateway_serves(&f.gateway.id, &other.id)
        .await
        .unwrap());
    // Assigning twice is one assignment; unassigning what is not assigned changes nothing.
    for _ in 0..2 {
        f.store
            .assign_gateway(&f.gateway.id, &other.id, t(2))
            .await
            .unwrap();
    }
    f.store
        .unassign_gateway(&scoped.id, &f.project.id)
        .await
        .unwrap();
    let assigned = f.store.gateway_projects().await.unwrap();
    let mut expected = vec![
        (f.gateway.id.clone(), "team-a".to_owned()),
        (scoped.id.clone(), "team-a".to_owned()),
    ];
    expected.sort();
    assert_eq!(assigned, expected, "by project, then gateway id");
    f.store
        .unassign_gateway(&f.gateway.id, &other.id)
        .await
        .unwrap();
    assert!(!f
        .store
        .gateway_serves(&f.gateway.id, &other.id)
        .await
        .unwrap());

    let patterns = vec!["*.corp.internal".to_owned(), "10.0.0.0/8:6443".to_owned()];
    let updated = f
        .store
        .set_gateway_allow_list(&f.gateway.id, &patterns)
        .await
        .unwrap();
    assert_eq!(updated.allowed_url_hosts, patterns);
    let read = f.store.gateway_by_name("gw").await.unwrap();
    assert_eq!(read.allowed_url_hosts, patterns);
    let cleared = f
        .store
        .set_gateway_allow_list(&f.gateway.id, &[])
        .await
        .unwrap();
    assert!(cleared.allowed_url_hosts.is_empty());
    let missing = f.store.set_gateway_allow_list("nope", &patterns).await;
    assert!(matches!(missing, Err(StoreError::NotFound(_))));
}

/// Issue 24 point 7: a resource edit replaces its URL, gateway and TLS settings and keeps its
/// name, accounts, grants and sessions.
pub(super) async fn a_resource_edit_keeps_its_accounts_grants_and_sessions(store: Arc<dyn Store>) {
    let f = fixture(store).await;
    let grant = f.grant(&f.user).await;
    let session = f.session(1, 100).await.record;
    let (_, enrollment) = issue_token("kmse_").unwrap();
    let other = f
        .store
        .create_gateway(NewGateway {
            name: "gw-2".into(),
            enrollment,
            enrollment_expires_at: t(3600),
            project_ids: Vec::new(),
            now: t(1),
        })
        .await
        .unwrap();
    let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    let change = ResourceChange {
        id: f.account.resource_id.clone(),
        url: "https://k8s.corp.internal:443".into(),
        gateway_id: other.id.clone(),
        ssl_verify: true,
        ca_cert: Some(pem.into()),
    };
    let edited = f.store.update_resource(change.clone()).await.unwrap();
    assert_eq!(
        (
            edited.url.as_str(),
            edited.gateway.as_str(),
            edited.ssl_verify
        ),
        ("https://k8s.corp.internal:443", "gw-2", true)
    );
    assert_eq!(edited.gateway_id, other.id);
    assert_eq!(edited.ca_cert.as_deref(), Some(pem));
    assert_eq!(
        (
            edited.name.as_str(),
            edited.kind.as_str(),
            edited.created_at
        ),
        ("prod", "kubernetes", t(0))
    );
    assert_eq!(
        f.store.resource(&f.project.id, "prod").await.unwrap(),
        edited
    );
    let back = ResourceChange {
        gateway_id: f.gateway.id.clone(),
        ssl_verify: false,
        ca_cert: None,
        ..change.clone()
    };
    let edited = f.store.update_resource(back).await.unwrap();
    assert_eq!((edited.gateway.as_str(), edited.ssl_verify), ("gw", false));
    assert_eq!(edited.ca_cert, None);
    let accounts = f.store.accounts(&f.project.id, None).await.unwrap();
    assert_eq!(accounts, vec![f.account.clone()]);
    let grants = f.store.grants(&f.project.id, None).await.unwrap();
    assert_eq!(grants, vec![grant]);
    assert_eq!(f.store.session(&session.session.id).await.unwrap(), session);
    let gone = ResourceChange {
        id: "no-such-resource".into(),
        ..change
    };
    let gone = f.store.update_resource(gone).await;
    assert!(matches!(gone, Err(StoreError::NotFound(_))), "{gone:?}");
}
