//! Issue 14 point 3: a client's `Kubectl-Command` header is its claim, not the truth. A request
//! through the real path that claims `kubectl get` but deletes shows as a delete, with the claim
//! flagged.

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use kms_pam::audit::group_commands;
use kms_pam_tests::apiserver::send_raw;
use kms_pam_tests::harness::InProcessPath;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claimed_get_that_deletes_is_shown_as_a_delete_and_flagged() {
    let path = InProcessPath::start().await;
    let created = path
        .kubectl
        .run(&["create", "configmap", "victim", "--from-literal=a=b"])
        .await;
    assert!(created.success(), "{}", created.stderr);
    let forged = Request::delete("/api/v1/namespaces/default/configmaps/victim")
        .header(
            "authorization",
            format!("Bearer {}", path.local_token.expose()),
        )
        .header("kubectl-command", "kubectl get")
        .header("kubectl-session", "forged-session")
        .header(
            "user-agent",
            "kubectl/v1.32.4 (linux/amd64) kubernetes/4cb5f07",
        )
        .body(Full::new(Bytes::new()))
        .expect("request");
    let answer = send_raw(&path.local_url, &path.local_ca_pem, forged)
        .await
        .expect("the delete went through");
    assert_eq!(answer.status(), 200, "{:?}", answer.body());

    let commands = group_commands(&path.audit.events());
    let command = commands
        .iter()
        .find(|c| c.kubectl_session.as_deref() == Some("forged-session"))
        .expect("the forged command");
    assert_eq!(command.claimed.as_deref(), Some("kubectl get"));
    assert_eq!(command.derived, "kubectl delete", "named by what it did");
    let why = command.mismatch.as_deref().expect("the claim is flagged");
    assert!(
        why.contains("deleted configmaps/victim in default"),
        "{why}"
    );
    let honest = commands
        .iter()
        .find(|c| c.claimed.as_deref() == Some("kubectl create configmap"))
        .expect("kubectl's own create");
    assert_eq!(honest.derived, "kubectl create");
    assert_eq!(honest.mismatch, None);
    path.shutdown().await;
}

/// `kubectl --as`/`--as-group` cannot act as anyone else through a session: the gateway drops
/// the impersonation. It used to do so silently; now kubectl prints the gateway's warning on
/// stderr and the session's record keeps what was asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_impersonation_is_said_on_stderr_and_kept_in_the_record() {
    let path = InProcessPath::start().await;
    let listed = path
        .kubectl
        .run(&["get", "configmaps", "--as=bob", "--as-group=admins"])
        .await;
    assert!(listed.success(), "{}", listed.stderr);
    assert!(
        listed.stderr.contains("kms-pam ignored --as/--as-group"),
        "kubectl shows the warning: {}",
        listed.stderr
    );
    let asked: Vec<String> = path
        .audit
        .events()
        .iter()
        .filter_map(|e| match &e.kind {
            kms_pam::audit::AuditEventKind::RequestStarted(started) => {
                started.impersonation.clone()
            }
            _ => None,
        })
        .collect();
    assert!(
        asked
            .iter()
            .any(|a| a.contains("impersonate-user: bob") && a.contains("impersonate-group: admins")),
        "{asked:?}"
    );
    // Without --as, nothing is said or kept.
    let plain = path.kubectl.run(&["get", "configmaps"]).await;
    assert!(plain.success(), "{}", plain.stderr);
    assert!(
        !plain.stderr.contains("kms-pam ignored"),
        "{}",
        plain.stderr
    );
    path.shutdown().await;
}
