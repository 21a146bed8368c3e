//! Session tracking end to end with real processes (`kms-pam server`, the `kms-pam-gateway`
//! binary, the CLI, the real kubectl, the API server double): kubectl commands read back by
//! `pam sessions show`, an exec replayed, KMS down and the gateway SIGKILLed mid-session with
//! every event delivered once afterwards, and a row altered in the KMS database caught by
//! `pam sessions verify`.

use std::time::Duration;

use kms_pam_tests::apiserver::{nginx_pod_names, ApiServerDouble, DoubleConfig};
use serde_json::Value;

use crate::support::world::{
    access, active_session, finish, kill, sqlite, wait_file, wait_until, world,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_commands_are_tracked_delivered_once_and_verified() {
    let double = ApiServerDouble::start(DoubleConfig::default())
        .await
        .expect("double");
    let (world, mut server, mut gateway) = world(&double).await;
    let pod = nginx_pod_names().remove(0);

    // One session running the usual commands; each is one command in `show`.
    let script = format!(
        "set -e; kubectl get pods; kubectl describe pod {pod} >/dev/null; \
         kubectl create configmap tracked --from-literal=a=b; kubectl delete configmap tracked; \
         printf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata:\\n  name: applied\\ndata:\\n  k: v\\n' \
           | kubectl apply --validate=false -f -; \
         kubectl exec {pod} -- echo hello-from-exec; \
         timeout 2 kubectl logs -f {pod} >/dev/null || true"
    );
    let first = finish(access(&world, &script)).await;
    assert_eq!(first.code, Some(0), "{}{}", first.stdout, first.stderr);
    assert!(first.stdout.contains("hello-from-exec"), "{}", first.stdout);
    let list = world.json(&["pam", "sessions", "list", "-o", "json"]).await;
    let id = list[0]["id"].as_str().expect("id").to_owned();
    let expected = [
        "kubectl get",
        "kubectl describe",
        "kubectl create configmap",
        "kubectl delete",
        "kubectl apply",
        "kubectl exec",
        "kubectl logs",
    ];
    let mut seen = Vec::new();
    for _ in 0..100 {
        seen = world.commands(&id).await;
        if seen == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, expected, "the session's commands at KMS");
    let show = world.show(&id).await;
    let get = show["commands"]
        .as_array()
        .expect("commands")
        .iter()
        .find(|c| c["command"] == "kubectl get")
        .expect("kubectl get");
    assert!(get["started_at"].is_string(), "{get}");
    let listed = get["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .find(|r| r["verb"] == "list")
        .unwrap_or_else(|| panic!("no list request: {get}"));
    for key in [
        "time",
        "method",
        "path",
        "status",
        "verb",
        "resource",
        "namespace",
        "name",
    ] {
        assert!(listed.get(key).is_some(), "request lacks {key}: {listed}");
    }
    assert_eq!(
        (&listed["resource"], &listed["namespace"], &listed["status"]),
        (
            &Value::from("pods"),
            &Value::from("default"),
            &Value::from(200)
        )
    );
    let text = world.ok(&["pam", "sessions", "show", &id]).await;
    assert!(text.contains("kubectl get pods -n default  200"), "{text}");
    assert!(
        text.contains("-- echo hello-from-exec  [recording 1]"),
        "{text}"
    );
    let replay = world
        .ok(&["pam", "sessions", "show", &id, "--recording", "1"])
        .await;
    assert_eq!(replay, "hello-from-exec\n");
    let verify = world.run(&["pam", "sessions", "verify", &id]).await;
    assert_eq!(verify.code, Some(0), "{}", verify.stderr);
    let (rows, _, _) = world.stored_counts(&id);
    assert_eq!(
        verify.stdout,
        format!("intact ({rows} events, head signed by KMS)\n")
    );

    // KMS down mid-session, then the gateway SIGKILLed with events still spooled: after the
    // restarts every event arrives, once.
    let home = world.home.path();
    let step = |n: u32| home.join(format!("step{n}"));
    let done = |n: u32| home.join(format!("done{n}"));
    let wait = |n: u32| format!("while [ ! -f {} ]; do sleep 0.1; done", step(n).display());
    let script = format!(
        "set -e; kubectl get pods; {}; kubectl get configmaps; touch {}; {}; \
         kubectl get namespaces; touch {}; {}; kubectl get pods",
        wait(1),
        done(1).display(),
        wait(2),
        done(2).display(),
        wait(3)
    );
    let second = access(&world, &script);
    let id = active_session(&world).await;
    wait_until("the first command at KMS", || async {
        world.commands(&id).await.len() == 1
    })
    .await;
    kill(&mut server).await;
    std::fs::write(step(1), "").expect("step 1");
    wait_file(&done(1)).await;
    server = world.start_kms();
    world.wait_kms().await;
    wait_until("events spooled while KMS was down", || async {
        world.commands(&id).await == ["kubectl get", "kubectl get"]
    })
    .await;

    kill(&mut server).await;
    std::fs::write(step(2), "").expect("step 2");
    wait_file(&done(2)).await;
    // Past the spool's 50 ms sync window, so the events are on disk when the gateway dies.
    tokio::time::sleep(Duration::from_millis(300)).await;
    kill(&mut gateway).await;
    server = world.start_kms();
    world.wait_kms().await;
    gateway = world.start_gateway(None);
    std::fs::write(step(3), "").expect("step 3");
    let second = finish(second).await;
    assert_eq!(second.code, Some(0), "{}{}", second.stdout, second.stderr);
    wait_until("every event of the second session", || async {
        let show = world.show(&id).await;
        let paths: Vec<String> = show["commands"]
            .as_array()
            .expect("commands")
            .iter()
            .flat_map(|c| c["requests"].as_array().cloned().unwrap_or_default())
            .filter(|r| r["discovery"] == false)
            .map(|r| r["path"].as_str().unwrap_or_default().to_owned())
            .collect();
        paths
            == [
                "/api/v1/namespaces/default/pods",
                "/api/v1/namespaces/default/configmaps",
                "/api/v1/namespaces",
                "/api/v1/namespaces/default/pods",
            ]
    })
    .await;
    let (rows, seqs, max) = world.stored_counts(&id);
    assert_eq!((rows, seqs), (max, max), "each event once, no gap");
    let verify = world.run(&["pam", "sessions", "verify", &id]).await;
    assert_eq!(
        verify.stdout,
        format!("intact ({rows} events, head signed by KMS)\n"),
        "{}",
        verify.stderr
    );

    // A stored event altered behind KMS's back: verify names it and exits 3 (altered).
    let db = world.kms_data().join("kms.db");
    let target = sqlite(
        &db,
        &format!(
            "SELECT seq || ' ' || id FROM session_events WHERE session_id = '{id}' \
             AND event LIKE '%\"request_finished\"%' ORDER BY seq LIMIT 1"
        ),
    );
    let (seq, event_id) = target.trim().split_once(' ').expect("a finished request");
    sqlite(
        &db,
        &format!(
            "UPDATE session_events SET event = replace(event, '\"status\":200', \
             '\"status\":403') WHERE id = '{event_id}'"
        ),
    );
    let verify = world.run(&["pam", "sessions", "verify", &id]).await;
    assert_eq!(verify.code, Some(3), "{}{}", verify.stdout, verify.stderr);
    assert!(
        verify
            .stdout
            .starts_with(&format!("altered at seq {seq} ({event_id}): ")),
        "{}",
        verify.stdout
    );
    kill(&mut gateway).await;
    kill(&mut server).await;
    double.shutdown().await;
}
