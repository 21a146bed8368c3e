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
fn each_module_stays_within_its_budget() {
    use kms_pam_tests::public_api::budget;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let listing = kms_pam_tests::public_api::listing("kms_pam", &root.join("kms-pam/src/lib.rs"))
        .expect("read the library's source");
    let counts = budget::module_counts("kms_pam", &listing);
    if let Err(problems) = budget::check(&counts, budget::BUDGETS) {
        panic!("the public API grew past its budget:\n{problems}");
    }
}

#[test]
fn internals_stay_out_of_the_listing() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let listing = kms_pam_tests::public_api::listing("kms_pam", &root.join("kms-pam/src/lib.rs"))
        .expect("read the library's source");
    // Neither the private modules nor anything in them appears, not even as a trait impl.
    for internal in [
        "kms_pam::proxy::tap",
        "kms_pam::proxy::stream",
        "kms_pam::proxy::body",
        "kms_pam::proxy::tunnel_client",
        "kms_pam::proxy::upstream",
        "kms_pam::proxy::recorder",
        "kms_pam::net",
        "kms_pam::proxy::deadline",
        "kms_pam::gateway::registry",
        "kms_pam::server::store",
        "kms_pam::fsutil",
        "kms_pam::time::rfc3339",
        "kms_pam::time::rfc3339_millis",
        "kms_pam::time::rfc3339_option",
        "SpoolCursor",
        "PendingBatch",
        "serve_with_refresh",
        "SessionRegistry",
        "RequestTap",
        "EngineStore",
        "CountingIo",
        "DeadlineBody",
        "TrackedFuture",
    ] {
        let leaks: Vec<&str> = listing
            .lines()
            .filter(|l| {
                l.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                    .any(|word| word == internal || word.starts_with(&format!("{internal}::")))
            })
            .collect();
        assert!(leaks.is_empty(), "{internal} is listed: {leaks:#?}");
    }
    // What the private modules give through a `pub use` is listed where an embedder names it.
    for public in [
        "struct kms_pam::proxy::Pipeline",
        "fn kms_pam::proxy::full: ",
        "trait kms_pam::proxy::UpstreamClient",
        "struct kms_pam::server::StoreFailure",
        "use kms_pam::SessionManager = kms_pam::session::SessionManager",
    ] {
        assert!(
            listing.lines().any(|l| l.starts_with(public)),
            "{public} is missing:\n{listing}"
        );
    }
}
