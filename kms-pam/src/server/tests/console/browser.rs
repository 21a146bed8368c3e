//! The console in a real headless Chromium, driven through chromedriver (WebDriver): sign in
//! through a one-time link, find a session by searching for its command, open it, see its
//! commands; stored-XSS payloads stay inert text; a member gets 404 on another user's session;
//! and (`console_browser_forms`) add a resource and an account through the forms, open Access,
//! read the command and change its duration.
//! Screenshots of each page go to `target/console-screenshots/`.

use std::time::Duration;

use fantoccini::Locator;
use serde_json::{json, Value};

use super::driver::{no_script_ran, shot, Driver};
use super::{kubectl, world};

/// A one-time sign-in link for `token`'s user, as `kms-pam console --no-browser` prints it.
async fn link(kms: &super::Kms, token: &str) -> String {
    let made = kms
        .post("/v1/console/links", token, Value::Null)
        .await
        .expect(http::StatusCode::CREATED);
    format!("http://{}{}", kms.addr, made["path"].as_str().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_browser() {
    let payload = "<script>window.pwned=1;document.title='pwned'</script><img src=x onerror=\"window.pwned=2\">";
    let w = world(payload, "kubectl rollout").await;
    // A second session of alice, whose recorded Kubectl-Command is the payload.
    let second = {
        let mut body = super::session_body("prod", 600);
        body["reason"] = json!("second");
        let created = w.kms.post("/v1/sessions", &w.alice, body).await;
        created.expect(http::StatusCode::CREATED)["session"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let events = kubectl(&second, payload);
    w.kms
        .post(
            "/v1/gateway/events",
            &w.gateway,
            json!({ "events": events }),
        )
        .await
        .expect(http::StatusCode::OK);

    let driver = Driver::start().await;
    let admin = driver.browser().await;
    let base = format!("http://{}", w.kms.addr);

    // Sign in through the one-time link.
    admin
        .goto(&link(&w.kms, &w.kms.admin.clone()).await)
        .await
        .unwrap();
    let url = admin.current_url().await.unwrap();
    assert!(url.path().ends_with("/p/default/sessions"), "{url}");
    no_script_ran(&admin).await;
    shot(&admin, "sessions").await;

    // Search for the command: exactly alice's first session matches.
    let search = admin.find(Locator::Css("input[name=q]")).await.unwrap();
    search.send_keys("rollout").await.unwrap();
    admin
        .find(Locator::Css("form.filters button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // The click only starts the navigation: wait for the filtered page before counting rows.
    for _ in 0..100 {
        let url = admin.current_url().await.unwrap();
        if url.query().is_some_and(|q| q.contains("q=rollout")) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let rows = admin.find_all(Locator::Css("tbody tr")).await.unwrap();
    assert_eq!(rows.len(), 1);
    // The payload reason is shown literally, and no script ran.
    let reason = admin
        .find(Locator::Css("tbody tr td:nth-child(8)"))
        .await
        .unwrap();
    assert_eq!(reason.text().await.unwrap(), payload);
    no_script_ran(&admin).await;
    shot(&admin, "sessions-search").await;

    // Open it: its command is there, with its requests.
    admin
        .find(Locator::Css("tbody tr td a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // The line (`Command::line`) leads with what the requests did (a read of pods in default),
    // the client's claim beside it.
    let codes = admin
        .find_all(Locator::Css("details summary code"))
        .await
        .unwrap();
    let mut shown = Vec::new();
    for code in codes {
        shown.push(code.text().await.unwrap());
    }
    assert_eq!(shown, ["kubectl get pods -n default", "kubectl rollout"]);
    admin
        .find(Locator::Css("details summary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let path = admin.find(Locator::Css("details td.mono")).await.unwrap();
    assert_eq!(
        path.text().await.unwrap(),
        "/api/v1/namespaces/default/pods"
    );
    no_script_ran(&admin).await;
    shot(&admin, "session").await;

    // The session whose recorded command is the payload: shown literally, inert.
    admin
        .goto(&format!("{base}/p/default/sessions/{second}"))
        .await
        .unwrap();
    // Shown as what the client claimed, beside what the request did.
    let codes = admin
        .find_all(Locator::Css("details summary code"))
        .await
        .unwrap();
    let claim = codes.last().expect("the claimed command");
    assert_eq!(claim.text().await.unwrap(), payload);
    no_script_ran(&admin).await;

    for (page, name) in [
        ("/p/default/resources", "resources"),
        ("/p/default/resources/prod", "resource"),
        ("/p/default/members", "members"),
        ("/gateways", "gateways"),
    ] {
        admin.goto(&format!("{base}{page}")).await.unwrap();
        shot(&admin, name).await;
    }
    // Terminate, with the confirmation step.
    admin
        .goto(&format!(
            "{base}/p/default/sessions/{}/terminate",
            w.admin_session
        ))
        .await
        .unwrap();
    shot(&admin, "terminate").await;
    admin
        .find(Locator::Css("button.danger"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // The click navigates: wait for the session page rather than race it.
    let badge = admin
        .wait()
        .for_element(Locator::Css("h1 .badge.terminated"))
        .await
        .unwrap();
    assert_eq!(badge.text().await.unwrap(), "terminated");
    admin.close().await.unwrap();

    // A member's browser: their own session opens, another user's is the 404 page.
    let member = driver.browser().await;
    member.goto(&link(&w.kms, &w.alice).await).await.unwrap();
    member
        .goto(&format!("{base}/p/default/sessions/{second}"))
        .await
        .unwrap();
    assert!(member.title().await.unwrap().starts_with("Session"));
    member
        .goto(&format!("{base}/p/default/sessions/{}", w.admin_session))
        .await
        .unwrap();
    assert!(member.title().await.unwrap().starts_with("Not found"));
    shot(&member, "not-found").await;
    member.close().await.unwrap();
}

/// The submit button of the form posting to `action`.
fn submit_of(action: &str) -> String {
    format!("form[action='{action}'] button[type=submit]")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_browser_forms() {
    let w = world("forms", "kubectl get pods").await;
    let driver = Driver::start().await;
    let admin = driver.browser().await;
    let base = format!("http://{}", w.kms.addr);
    admin
        .goto(&link(&w.kms, &w.kms.admin.clone()).await)
        .await
        .unwrap();

    // Add resource: a refused name comes back next to its field, then the fixed form goes in.
    admin
        .goto(&format!("{base}/p/default/resources"))
        .await
        .unwrap();
    let field = |name: &str| format!("form[action='/p/default/resources'] [name={name}]");
    let name = admin.find(Locator::Css(&field("name"))).await.unwrap();
    name.send_keys("bad name!").await.unwrap();
    let url = admin.find(Locator::Css(&field("url"))).await.unwrap();
    url.send_keys("https://10.0.0.2:6443").await.unwrap();
    let gateway = admin.find(Locator::Css(&field("gateway"))).await.unwrap();
    gateway.select_by_value("gw").await.unwrap();
    let submit = submit_of("/p/default/resources");
    admin
        .find(Locator::Css(&submit))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let error = admin
        .wait()
        .for_element(Locator::Css("label[data-field=name] .field-error"))
        .await
        .unwrap();
    assert!(error
        .text()
        .await
        .unwrap()
        .contains("invalid resource name"));
    shot(&admin, "add-resource-error").await;
    let name = admin.find(Locator::Css(&field("name"))).await.unwrap();
    name.clear().await.unwrap();
    name.send_keys("staging").await.unwrap();
    let gateway = admin.find(Locator::Css(&field("gateway"))).await.unwrap();
    gateway.select_by_value("gw").await.unwrap();
    admin
        .find(Locator::Css(&submit))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    // The resource's page: Add account.
    let accounts = "/p/default/resources/staging/accounts";
    let field = |name: &str| format!("form[action='{accounts}'] [name={name}]");
    let account = admin
        .wait()
        .for_element(Locator::Css(&field("name")))
        .await
        .unwrap();
    account.send_keys("ops").await.unwrap();
    let description = admin
        .find(Locator::Css(&field("description")))
        .await
        .unwrap();
    description.send_keys("operators").await.unwrap();
    let token = admin.find(Locator::Css(&field("token"))).await.unwrap();
    token
        .send_keys(crate::server::tests::SA_TOKEN)
        .await
        .unwrap();
    let max = admin
        .find(Locator::Css(&field("max_duration")))
        .await
        .unwrap();
    max.clear().await.unwrap();
    max.send_keys("2h").await.unwrap();
    shot(&admin, "add-account").await;
    admin
        .find(Locator::Css(&submit_of(accounts)))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    // Access: open the panel, read the command, change the duration.
    let summary = admin
        .wait()
        .for_element(Locator::Css("#account-0 details summary"))
        .await
        .unwrap();
    summary.click().await.unwrap();
    let command = admin.find(Locator::Css("#access-0")).await.unwrap();
    assert_eq!(
        command.text().await.unwrap(),
        format!("kms-pam --url {base} pam access staging/ops --project default --duration 2h")
    );
    let copy = admin
        .find(Locator::Css("button[data-copy=access-0]"))
        .await
        .unwrap();
    assert!(
        copy.is_displayed().await.unwrap(),
        "console.js shows the copy button"
    );
    let duration = admin
        .find(Locator::Css("#account-0 input[name=duration]"))
        .await
        .unwrap();
    duration.clear().await.unwrap();
    duration.send_keys("30m").await.unwrap();
    admin
        .find(Locator::Css("#account-0 form button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let updated = admin
        .wait()
        .for_element(Locator::XPath(
            "//code[@id='access-0'][contains(., '--duration 30m')]",
        ))
        .await
        .unwrap();
    assert!(updated
        .text()
        .await
        .unwrap()
        .ends_with("staging/ops --project default --duration 30m"));
    let source = admin.source().await.unwrap();
    assert!(
        !source.contains(crate::server::tests::SA_TOKEN),
        "the token is never rendered"
    );
    shot(&admin, "access").await;

    // Without a clipboard (plain HTTP from another host gives none), Copy selects the command
    // and says how to copy it (it did nothing).
    admin
        .execute(
            "Object.defineProperty(navigator, 'clipboard', {value: undefined}); return true;",
            vec![],
        )
        .await
        .unwrap();
    let copy = admin
        .find(Locator::Css("button[data-copy=access-0]"))
        .await
        .unwrap();
    copy.click().await.unwrap();
    let said = copy.text().await.unwrap();
    assert_eq!(said, "Selected: press Ctrl+C");
    let selected = admin
        .execute("return window.getSelection().toString();", vec![])
        .await
        .unwrap();
    assert_eq!(
        selected.as_str(),
        Some("kms-pam --url {base} pam access staging/ops --project default --duration 30m")
            .map(|s| s.replace("{base}", &base))
            .as_deref()
    );

    // Live refresh: an active session's page takes in new commands without a reload (a marker
    // set in the page survives).
    admin
        .goto(&format!("{base}/p/default/sessions/{}", w.admin_session))
        .await
        .unwrap();
    admin
        .execute("window.kept = 1; return true;", vec![])
        .await
        .unwrap();
    let events = super::session_page::three_requests(&w.admin_session);
    w.kms
        .post(
            "/v1/gateway/events",
            &w.gateway,
            json!({ "events": events }),
        )
        .await
        .expect(http::StatusCode::OK);
    admin
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::XPath("//h2[contains(., 'Commands (2)')]"))
        .await
        .unwrap();
    let kept = admin
        .execute("return window.kept === 1;", vec![])
        .await
        .unwrap();
    assert_eq!(
        kept,
        json!(true),
        "the page was reloaded instead of refreshed in place"
    );
    admin.close().await.unwrap();
}
