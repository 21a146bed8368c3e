//! `kms-pam sso provider …` and `kms-pam login --sso`'s refusals, against the fake KMS: the
//! bodies sent, configuration from the environment, secrets never echoed.

use crate::support::{command, kms_pam, stderr, stdout, FakeKms};

const PROVIDER: &str = r#"{"name":"corp","issuer":"https://idp.example","client_id":"kms",
    "scopes":["openid","email"],"groups_claim":"groups","rules":[{"group":"sre",
    "target":{"kind":"project","project":"prod","role":"admin"}}],
    "require_existing_users":true,"credential_ttl_secs":7200,
    "created_at":"2026-01-01T10:00:00Z"}"#;

#[test]
fn a_provider_is_created_from_the_environment_and_its_secret_read_from_a_file() {
    let kms = FakeKms::routes(vec![("POST /v1/sso/providers", 201, PROVIDER.to_owned())]);
    let home = tempfile::tempdir().unwrap();
    let secret = home.path().join("secret");
    std::fs::write(&secret, "s3cret-value\n").unwrap();
    let output = command(
        home.path(),
        &[
            "--url", &kms.url, "--token", "t", "sso", "provider", "create", "corp",
        ],
    )
    .env("KMS_PAM_SSO_ISSUER", "https://idp.example")
    .env("KMS_PAM_SSO_CLIENT_ID", "kms")
    .env("KMS_PAM_SSO_CLIENT_SECRET_FILE", &secret)
    .env("KMS_PAM_SSO_SCOPES", "openid email")
    .env("KMS_PAM_SSO_MAP", "sre=prod:admin k8s-admins=org-admin")
    .env("KMS_PAM_SSO_REQUIRE_EXISTING_USERS", "true")
    .env("KMS_PAM_SSO_CREDENTIAL_TTL", "2h")
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(!stdout(&output).contains("s3cret"), "{}", stdout(&output));
    assert!(stdout(&output).contains("/login/sso/callback"));
    let body: serde_json::Value = serde_json::from_str(&kms.bodies()[0]).unwrap();
    assert_eq!(body["client_secret"], "s3cret-value");
    assert_eq!(body["scopes"], serde_json::json!(["openid", "email"]));
    assert_eq!(body["require_existing_users"], true);
    assert_eq!(body["credential_ttl_secs"], 7200);
    assert_eq!(
        body["rules"][1],
        serde_json::json!({"group": "k8s-admins", "target": {"kind": "org_admin"}})
    );
}

#[test]
fn provider_list_and_delete_call_their_routes() {
    let kms = FakeKms::routes(vec![
        ("GET /v1/sso/providers", 200, format!("[{PROVIDER}]")),
        ("DELETE /v1/sso/providers/corp", 204, String::new()),
    ]);
    let home = tempfile::tempdir().unwrap();
    let base = ["--url", kms.url.as_str(), "--token", "t", "sso", "provider"];
    let listed = kms_pam(home.path(), &[&base[..], &["list"]].concat());
    assert_eq!(listed.status.code(), Some(0), "{}", stderr(&listed));
    let text = stdout(&listed);
    assert!(
        text.contains("corp") && text.contains("sre=prod:admin"),
        "{text}"
    );
    assert!(text.contains("must exist") && text.contains("2h"), "{text}");
    let deleted = kms_pam(home.path(), &[&base[..], &["delete", "corp"]].concat());
    assert_eq!(deleted.status.code(), Some(0), "{}", stderr(&deleted));
    assert_eq!(kms.seen()[1], "DELETE /v1/sso/providers/corp Bearer t");
}

#[test]
fn bad_rules_and_empty_secrets_are_refused_before_kms_is_asked() {
    let kms = FakeKms::routes(vec![]);
    let home = tempfile::tempdir().unwrap();
    let empty = home.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let create = |extra: &[&str]| {
        let args = [
            &[
                "--url",
                &kms.url,
                "--token",
                "t",
                "sso",
                "provider",
                "create",
                "corp",
                "--issuer",
                "https://idp.example",
                "--client-id",
                "kms",
            ][..],
            extra,
        ]
        .concat();
        kms_pam(home.path(), &args)
    };
    let bad = create(&[
        "--client-secret-file",
        empty.to_str().unwrap(),
        "--map",
        "sre=prod:owner",
    ]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("unknown role"), "{}", stderr(&bad));
    let empty_secret = create(&["--client-secret-file", empty.to_str().unwrap()]);
    assert_eq!(empty_secret.status.code(), Some(1));
    assert!(
        stderr(&empty_secret).contains("is empty"),
        "{}",
        stderr(&empty_secret)
    );
    assert!(kms.seen().is_empty(), "{:?}", kms.seen());
}

#[test]
fn login_sso_needs_a_provider_kms_has() {
    let none = FakeKms::routes(vec![(
        "GET /v1/sso/providers/names",
        200,
        r#"{"providers":[]}"#.to_owned(),
    )]);
    let home = tempfile::tempdir().unwrap();
    let output = kms_pam(home.path(), &["login", "--url", &none.url, "--sso"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("no single sign-on provider"),
        "{}",
        stderr(&output)
    );
    let two = FakeKms::routes(vec![(
        "GET /v1/sso/providers/names",
        200,
        r#"{"providers":["corp","partners"]}"#.to_owned(),
    )]);
    let output = kms_pam(home.path(), &["login", "--url", &two.url, "--sso"]);
    assert!(
        stderr(&output).contains("choose one with --provider: corp, partners"),
        "{}",
        stderr(&output)
    );
    // --provider and --no-browser belong to --sso; --refresh needs a single sign-on login.
    let usage = kms_pam(home.path(), &["login", "--url", &two.url, "--no-browser"]);
    assert_eq!(usage.status.code(), Some(2));
    let refresh = kms_pam(home.path(), &["login", "--url", &two.url, "--refresh"]);
    assert_eq!(refresh.status.code(), Some(1));
    assert!(
        stderr(&refresh).contains("not logged in"),
        "{}",
        stderr(&refresh)
    );
    assert!(!home.path().join("config/kms-pam/config.json").exists());
}
