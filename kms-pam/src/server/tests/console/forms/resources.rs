//! The Edit resource form (issue 24 point 7): it shows what is stored, checks each field as the
//! Add resource form does, saves through `PATCH /v1/resources/{name}`'s handler, and is for
//! project administrators only.

use http::{Method, StatusCode};
use serde_json::{json, Value};

use super::super::{page, sign_in, world};
use super::{field_error, post};

fn edit_body<'a>(url: &'a str, gateway: &'a str, ca_cert: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("url", url),
        ("gateway", gateway),
        ("ca_cert", ca_cert),
        ("unrecorded_streams", "allow"),
        ("recording_max_bytes", "64KiB"),
        ("recording_input_max_bytes", ""),
    ]
}

#[tokio::test]
async fn edit_resource_form_shows_checks_and_saves_through_the_api() {
    let w = world("r", "kubectl get pods").await;
    w.kms.gateway("gw-2").await;
    let admin = sign_in(&w.kms, &w.kms.admin.clone()).await;
    let alice = sign_in(&w.kms, &w.alice).await;
    let audrey = sign_in(&w.kms, &w.audrey).await;
    let resource = "/p/default/resources/prod";
    let path = "/p/default/resources/prod/edit";

    let shown = page(&w.kms, Method::GET, resource, Some(&admin), &[], None).await;
    assert!(shown
        .text
        .contains("href=\"/p/default/resources/prod/edit\""));
    let member_view = page(&w.kms, Method::GET, resource, Some(&alice), &[], None).await;
    assert!(
        !member_view.text.contains("Edit resource"),
        "members see no link"
    );
    let form = page(&w.kms, Method::GET, path, Some(&admin), &[], None).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.text);
    assert!(
        form.text.contains("value=\"https://10.0.0.1:6443\""),
        "{}",
        form.text
    );
    assert!(
        form.text.contains("<option value=\"gw\" selected>"),
        "{}",
        form.text
    );
    assert!(form.text.contains("Sessions already open keep running"));
    for (who, cookie) in [("member", &alice), ("auditor", &audrey)] {
        let refused = page(&w.kms, Method::GET, path, Some(cookie), &[], None).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{who}");
        let body = edit_body("https://k8s.corp.internal:6443", "gw-2", "");
        let refused = post(&w, path, cookie, &body).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{who} may not save");
    }

    // Refusals next to their field, what was typed kept, nothing changed.
    let bad = edit_body("ftp://x", "gw", "nope");
    let refused = post(&w, path, &admin, &bad).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(field_error(&refused, "url").unwrap().contains("https://"));
    assert!(field_error(&refused, "ca_cert").unwrap().contains("PEM"));
    assert!(
        refused.text.contains("value=\"ftp://x\""),
        "what was typed stays"
    );
    let unknown = edit_body("https://10.0.0.1:6443", "nope", "");
    let refused = post(&w, path, &admin, &unknown).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(field_error(&refused, "gateway")
        .unwrap()
        .contains("not found"));
    let stored = w.kms.get("/v1/resources/prod", &w.kms.admin).await;
    assert_eq!(stored.expect(StatusCode::OK)["gateway"], "gw");

    // Saved: every field, the unticked checkbox turning verification off.
    let pem = w.kms.ca_pem.clone();
    let good = edit_body("https://k8s.corp.internal:6443", "gw-2", &pem);
    let saved = post(&w, path, &admin, &good).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.text);
    assert_eq!(saved.headers["location"], resource);
    let stored: Value = w
        .kms
        .get("/v1/resources/prod", &w.kms.admin)
        .await
        .expect(StatusCode::OK);
    assert_eq!(stored["url"], "https://k8s.corp.internal:6443");
    assert_eq!(
        (&stored["gateway"], &stored["ssl_verify"]),
        (&json!("gw-2"), &json!(false))
    );
    assert_eq!(stored["ca_cert"].as_str().map(str::trim), Some(pem.trim()));
    assert_eq!(
        stored["recording"],
        json!({"unrecorded_streams": "allow", "max_bytes": 65536})
    );
    // A blank CA certificate removes the bundle; ticking the box verifies again.
    let mut cleared = edit_body("https://k8s.corp.internal:6443", "gw-2", "");
    cleared.push(("ssl_verify", "on"));
    let saved = post(&w, path, &admin, &cleared).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.text);
    let stored = w.kms.get("/v1/resources/prod", &w.kms.admin).await;
    let stored = stored.expect(StatusCode::OK);
    assert_eq!(
        (&stored["ca_cert"], &stored["ssl_verify"]),
        (&Value::Null, &json!(true))
    );
    let accounts = w.kms.get("/v1/accounts?resource=prod", &w.kms.admin).await;
    assert_eq!(
        accounts.expect(StatusCode::OK)[0]["name"],
        "admin",
        "accounts stay"
    );

    // A form posted from another site is refused.
    let body = super::form(&cleared);
    let cross = [("sec-fetch-site", "cross-site")];
    let forged = page(
        &w.kms,
        Method::POST,
        path,
        Some(&admin),
        &cross,
        Some(&body),
    )
    .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.text);
}
