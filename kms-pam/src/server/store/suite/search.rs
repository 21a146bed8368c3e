//! The console's command search, on every engine: words of one stored command line, in any
//! order and case; the lines of a session replaced as a whole; the sessions still to index.

use super::events::append_as_given;
use super::*;

async fn found(f: &Fixture, text: &str) -> Vec<SessionId> {
    let search = SessionSearch {
        text: Some(text.into()),
        limit: 10,
        ..SessionSearch::default()
    };
    let page = f.store.session_page(&f.project.id, &search).await.unwrap();
    page.sessions.into_iter().map(|s| s.session.id).collect()
}

pub(super) async fn command_lines_are_searched_word_by_word(store: Arc<dyn Store>) {
    let f = fixture(store).await;
    let get = f.session(1, 100).await.record.session.id;
    let exec = f.session(2, 100).await.record.session.id;
    let lines = |l: &[&str]| l.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    f.store
        .set_command_lines(
            &get,
            &lines(&[
                "kubectl get pods -n default",
                "kubectl get deployments/my-app -n default  (client: kubectl describe)",
            ]),
        )
        .await
        .unwrap();
    f.store
        .set_command_lines(
            &exec,
            &lines(&["kubectl exec pods/web -n default -- echo hi"]),
        )
        .await
        .unwrap();
    assert_eq!(found(&f, "get pods").await, std::slice::from_ref(&get));
    assert_eq!(
        found(&f, "GET Pods").await,
        std::slice::from_ref(&get),
        "case aside"
    );
    assert_eq!(
        found(&f, "describe deployment my-app").await,
        std::slice::from_ref(&get)
    );
    assert_eq!(found(&f, "echo hi").await, std::slice::from_ref(&exec));
    assert_eq!(found(&f, "pods").await, [exec.clone(), get.clone()]);
    // The words of one line: `exec` and `get` are never in the same one.
    assert!(found(&f, "exec get").await.is_empty());
    assert!(
        found(&f, "100%").await.is_empty(),
        "LIKE's wildcards are text"
    );
    // A session's lines are replaced as a whole.
    f.store
        .set_command_lines(&get, &lines(&["kubectl delete pods/web -n default"]))
        .await
        .unwrap();
    assert!(found(&f, "describe").await.is_empty());
    assert_eq!(found(&f, "delete web").await, std::slice::from_ref(&get));
}

pub(super) async fn sessions_with_requests_and_no_lines_are_listed(store: Arc<dyn Store>) {
    let f = fixture(store).await;
    let session = f.session(1, 100).await.record.session.id;
    let quiet = f.session(2, 100).await.record.session.id;
    let request = EventRecord {
        id: "e1".into(),
        session_id: session.clone(),
        seq: 1,
        hash: "h1".into(),
        json: r#"{"type":"request_started","id":"e1","kubectl_session":"k1"}"#.into(),
    };
    append_as_given(&*f.store, &[request], t(3)).await.unwrap();
    let started = EventRecord {
        id: "e2".into(),
        session_id: quiet.clone(),
        seq: 1,
        hash: "h2".into(),
        json: r#"{"type":"session_started","id":"e2"}"#.into(),
    };
    append_as_given(&*f.store, &[started], t(3)).await.unwrap();
    let todo = f.store.sessions_without_command_lines(10).await.unwrap();
    assert_eq!(todo, std::slice::from_ref(&session));
    f.store
        .set_command_lines(&session, &["kubectl get pods".into()])
        .await
        .unwrap();
    assert!(f
        .store
        .sessions_without_command_lines(10)
        .await
        .unwrap()
        .is_empty());
}
