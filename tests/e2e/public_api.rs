//! The library's public API as reviewed: `docs/public-api.txt` must match the source. After an
//! intended change, regenerate it with `BLESS=1 cargo test -p kms-pam-tests --test e2e public_api`
//! and review the diff.

use std::path::Path;

#[test]
fn the_public_api_listing_is_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let listing = kms_pam_tests::public_api::listing("kms_pam", &root.join("kms-pam/src/lib.rs"))
        .expect("read the library's source");
    let recorded_path = root.join("docs/public-api.txt");
    let header = "# kms_pam public API (generated from the source; see tests/e2e/public_api.rs)\n";
    let current = format!("{header}{listing}");
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&recorded_path, &current).expect("write docs/public-api.txt");
        return;
    }
    let recorded = std::fs::read_to_string(&recorded_path).unwrap_or_default();
    if recorded != current {
        let old: std::collections::BTreeSet<&str> = recorded.lines().collect();
        let new: std::collections::BTreeSet<&str> = current.lines().collect();
        let removed: Vec<&&str> = old.difference(&new).collect();
        let added: Vec<&&str> = new.difference(&old).collect();
        panic!(
            "the public API changed; review and run with BLESS=1 to record it.\nremoved: {removed:#?}\nadded: {added:#?}"
        );
    }
}

#[test]
fn internals_stay_out_of_the_listing() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let listing = kms_pam_tests::public_api::listing("kms_pam", &root.join("kms-pam/src/lib.rs"))
        .expect("read the library's source");
    for internal in [
        "mod kms_pam::proxy::tap",
        "mod kms_pam::proxy::stream",
        "mod kms_pam::proxy::body",
        "mod kms_pam::proxy::tunnel_client",
        "mod kms_pam::proxy::upstream",
        "mod kms_pam::proxy::http2",
        "mod kms_pam::proxy::deadline",
        "struct kms_pam::gateway::registry::SessionRegistry",
    ] {
        assert!(
            !listing
                .lines()
                .any(|l| l == internal || l.starts_with(&format!("{internal} "))),
            "{internal} is public"
        );
    }
    assert!(
        listing.contains("struct kms_pam::proxy::pipeline::Pipeline"),
        "{listing}"
    );
}
