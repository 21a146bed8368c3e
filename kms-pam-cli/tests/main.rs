//! The CLI's tests, one binary: the built `kms-pam` against a fake KMS (`cli`, `access`,
//! `terminal`), and with real processes (`kms-pam server`, the `kms-pam-gateway` binary, the real
//! kubectl against the API server double): the whole flow (`flow`), session tracking
//! (`tracking`), projects and roles (`control`), taking access away (`revocation`), abandoned
//! sessions (`abandon`), the database attacker (`attacker`), KMS over HTTPS and plain HTTP
//! refused (`https`), the web console in a browser
//! (`console`), replicas on PostgreSQL (`replicas`), `server migrate-store`
//! (`migrate_store`), a relay's certificate (`relay_certificate`) and the single sign-on tests'
//! OpenID Connect provider (`oidc_harness`). `support` holds the fake
//! KMS and the helpers that start the processes.

// Tests: a failed set-up panics with its reason.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod abandon;
mod access;
mod attacker;
mod cli;
mod console;
mod control;
mod deploy_env;
mod flow;
mod grant_lifetime;
mod https;
mod migrate_store;
mod oidc_harness;
mod relay;
mod relay_certificate;
mod replicas;
mod revocation;
mod sso;
mod support;
mod terminal;
mod tracking;
