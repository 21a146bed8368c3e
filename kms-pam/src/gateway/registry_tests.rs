//! The registry against mocked traits: how it reacts to what the session manager, the credential
//! store and the audit sink say.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::StatusCode;
use tokio::sync::watch;

use super::SessionRegistry;
use crate::audit::{AuditEventKind, MockAuditSink};
use crate::credential::{CredentialError, MockCredentialStore, SessionCredential, Upstream};
use crate::metrics::GatewayMetrics;
use crate::secret::Secret;
use crate::session::{
    MockSessionManager, Session, SessionEnding, SessionId, SessionStatus, SessionWatch,
};
use crate::tls::UpstreamTls;
use crate::transport::TunnelPeer;

fn session(gateway: &str, status: SessionStatus) -> Session {
    let now = SystemTime::now();
    Session {
        id: SessionId::new("s-1"),
        user: "alice".into(),
        resource: "prod".into(),
        account: "admin".into(),
        gateway: gateway.into(),
        status,
        created_at: now,
        expires_at: now + Duration::from_secs(600),
        ended_at: None,
        reason: None,
        binding: None,
    }
}

fn peer() -> TunnelPeer {
    TunnelPeer {
        session_id: SessionId::new("s-1"),
        remote_addr: None,
        not_after: None,
    }
}

fn credential() -> SessionCredential {
    SessionCredential::new(
        Upstream {
            url: "https://127.0.0.1:6443".parse().expect("url"),
            tls: UpstreamTls::InsecureSkipVerify,
        },
        Secret::new("sa-token"),
    )
}

fn quiet_audit() -> MockAuditSink {
    let mut audit = MockAuditSink::new();
    audit.expect_record().returning(|_| Ok(()));
    audit.expect_flush().returning(|| Ok(()));
    audit
}

fn registry(
    sessions: MockSessionManager,
    credentials: MockCredentialStore,
    audit: MockAuditSink,
) -> Arc<SessionRegistry> {
    SessionRegistry::new(
        "gw".into(),
        Arc::new(sessions),
        Arc::new(credentials),
        Arc::new(audit),
        Arc::new(GatewayMetrics::new()),
        Arc::new(crate::proxy::PooledConnector::new()),
    )
}

#[tokio::test]
async fn a_termination_from_the_manager_cuts_the_session_and_refuses_new_tunnels() {
    let (status, status_rx) = watch::channel(SessionStatus::Active);
    let terminated = Arc::new(AtomicBool::new(false));
    let mut sessions = MockSessionManager::new();
    let seen = terminated.clone();
    sessions.expect_get().returning(move |_| {
        let status = if seen.load(Ordering::SeqCst) {
            SessionStatus::Terminated
        } else {
            SessionStatus::Active
        };
        Ok(session("gw", status))
    });
    let expires = SystemTime::now() + Duration::from_secs(600);
    sessions
        .expect_watch()
        .times(1)
        .returning(move |_| Ok(SessionWatch::new(status_rx.clone(), expires)));
    let ended_at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    sessions.expect_ending().times(1).returning(move |_| {
        Ok(SessionEnding::new(
            SessionStatus::Terminated,
            Some(ended_at),
            Some("termination".into()),
        ))
    });
    let mut credentials = MockCredentialStore::new();
    credentials
        .expect_credential()
        .times(1)
        .returning(|_| Ok(credential()));
    let mut audit = MockAuditSink::new();
    audit
        .expect_record()
        .withf(|e| matches!(e.kind, AuditEventKind::SessionStarted { .. }))
        .times(1)
        .returning(|_| Ok(()));
    audit
        .expect_record()
        .withf(move |e| {
            // KMS's view of the end (status, time, cause) is signed into it.
            matches!(
                &e.kind,
                AuditEventKind::SessionEnded {
                    status: SessionStatus::Terminated,
                    ended_at: Some(t),
                    end_cause: Some(cause),
                } if *t == ended_at && cause == "termination"
            )
        })
        .times(1)
        .returning(|_| Ok(()));
    audit.expect_flush().times(1).returning(|| Ok(()));
    let registry = registry(sessions, credentials, audit);

    let admitted = registry.attach(&peer()).await.expect("admitted");
    assert!(admitted.deadline().check().is_ok());
    // A second tunnel of the same session reuses the admission (one credential fetch).
    registry.attach(&peer()).await.expect("second tunnel");

    terminated.store(true, Ordering::SeqCst);
    status.send_replace(SessionStatus::Terminated);
    tokio::time::timeout(
        Duration::from_secs(5),
        admitted.deadline().token().cancelled(),
    )
    .await
    .expect("the session was cut on the notification");
    assert_eq!(
        admitted.deadline().stopped(),
        Some(SessionStatus::Terminated)
    );
    // Give the watcher its moment to forget the session, then a new tunnel is refused.
    for _ in 0..50 {
        if registry.active_sessions() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let refused = registry.attach(&peer()).await.expect_err("refused");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(refused.message().contains("terminated"), "{refused}");
}

#[tokio::test]
async fn an_unreachable_credential_store_refuses_with_502_and_admits_nothing() {
    let mut sessions = MockSessionManager::new();
    sessions
        .expect_get()
        .returning(|_| Ok(session("gw", SessionStatus::Active)));
    sessions.expect_watch().never();
    let mut credentials = MockCredentialStore::new();
    credentials
        .expect_credential()
        .times(2)
        .returning(|_| Err(CredentialError::unavailable("KMS timed out")));
    let registry = registry(sessions, credentials, quiet_audit());
    for _ in 0..2 {
        // Not cached: the next tunnel asks again.
        let error = registry.attach(&peer()).await.expect_err("refused");
        assert_eq!(error.status(), StatusCode::BAD_GATEWAY);
        assert!(error.message().contains("KMS timed out"), "{error}");
    }
    assert_eq!(registry.active_sessions(), 0);
}

#[tokio::test]
async fn a_session_bound_elsewhere_never_fetches_the_credential() {
    let mut sessions = MockSessionManager::new();
    sessions
        .expect_get()
        .returning(|_| Ok(session("other-gw", SessionStatus::Active)));
    let mut credentials = MockCredentialStore::new();
    credentials.expect_credential().never();
    let registry = registry(sessions, credentials, quiet_audit());
    let error = registry.attach(&peer()).await.expect_err("refused");
    assert_eq!(error.status(), StatusCode::UNAUTHORIZED);
    assert!(error.message().contains("other-gw"), "{error}");
}

#[tokio::test]
async fn a_manager_that_cannot_answer_fails_closed() {
    let mut sessions = MockSessionManager::new();
    sessions.expect_get().returning(|_| {
        Err(crate::session::SessionError::unavailable(
            "connection refused",
        ))
    });
    let mut credentials = MockCredentialStore::new();
    credentials.expect_credential().never();
    let registry = registry(sessions, credentials, quiet_audit());
    let error = registry.attach(&peer()).await.expect_err("refused");
    assert_eq!(error.status(), StatusCode::BAD_GATEWAY);
    assert!(
        error.message().contains("cannot check the session"),
        "{error}"
    );
}
