//! The public API's size, module by module: each listed line (an item, a method, a trait impl, a
//! re-export) counts toward the module of the first path it names (`impl kms_pam::audit::Spool: fn
//! depth …` toward `kms_pam::audit`); a line naming none of the crate's paths (a blanket impl)
//! toward the crate root; `mod` lines not at all. [`BUDGETS`] caps each module at its count when the
//! budget was set: a module that grows past its cap, or a new module without one, fails the test —
//! growing the API is then a decision written into the table, in review.

use std::collections::BTreeMap;

/// Module → the most listed lines it may have (set at the counts after the restructuring of
/// issue 26).
pub const BUDGETS: &[(&str, usize)] = &[
    // +1: relay (issue 20).
    ("kms_pam", 14),
    ("kms_pam::access", 34),
    // +7, issue 24 points 2 and 3: Command::line and CommandLine (one command line for the CLI,
    // the console and the search), Command::outcome, RequestSummary::state, RequestState, Outcome.
    ("kms_pam::audit", 80),
    ("kms_pam::audit::evidence", 12),
    ("kms_pam::audit::evidence::chain", 17),
    ("kms_pam::audit::evidence::signing", 22),
    ("kms_pam::audit::recording", 18),
    ("kms_pam::credential", 17),
    // Issue 28 (8): the credential sealed to a gateway's key (HPKE): key, public key, sealed token.
    ("kms_pam::credential::sealing", 17),
    ("kms_pam::gateway", 14),
    // Issue 28 (8): +1, KmsGateway::with_kms_client_options (--kms-ca, --insecure-http).
    // +2: serve_on (no listener: relays only) and with_relays (issue 20).
    ("kms_pam::gateway::kms", 15),
    ("kms_pam::gateway::mtls", 6),
    ("kms_pam::gateway::standalone", 9),
    // +2: UpdateGateway and AssignGateway, the bodies of gateway scope (issue 28 point 6);
    // +1: RegisterSealingKey (issue 28 point 8).
    // +8, issue 20 (relays): GatewayReach (with its Default, and Display for `gateway list` and
    // the console), RelayLink, RenewGatewayCertificate, RenewedGatewayCertificate,
    // IssueRelayCertificate, RelayCertificate.
    // +17, issue 22 (single sign-on): the shapes of /v1/sso (providers, group rules and their
    // targets with FromStr/Display, the CLI's credential, exchange, device sign-in and poll,
    // refresh), the two token prefixes, WhoAmI's identity.
    // +1: UpdateResource, the body of `PATCH …/resources/{name}` (issue 24 point 7).
    // +4, issue 23 point 1 (grants with a lifetime): GrantStatus (with as_str and Display, for
    // `pam grant list`) and RevokeGrant, the body of `POST …/grants/{id}/revoke`.
    ("kms_pam::kms::api", 97),
    // +5: GatewaysApi's create_for, get, update, assign and unassign (issue 28 point 6);
    // +6: KmsClientOptions (struct, three methods), with_options, register_sealing_key (point 8).
    // +4, issue 20: GatewayApi::renew_certificate; KmsClient::relays, RelaysApi and its
    // issue_certificate (`kms-pam relay certificate`).
    // +16, issue 22: KmsClient::sso, SsoApi (names, list, create, delete, exchange,
    // start_device, poll_device, refresh), LoopbackSignIn (start, verifier, url, code) and
    // LoopbackError: the CLI's single sign-on.
    // +1: ResourcesApi::update (`pam resource update`, issue 24 point 7).
    // +1: GrantsApi::revoke (`pam grant revoke`, issue 23 point 1).
    ("kms_pam::kms::client", 126),
    ("kms_pam::kube", 13),
    ("kms_pam::kube::frames", 7),
    ("kms_pam::kube::kubeconfig", 18),
    ("kms_pam::kube::request_info", 6),
    ("kms_pam::kube::status", 4),
    ("kms_pam::local", 6),
    ("kms_pam::metrics", 17),
    ("kms_pam::proxy", 68),
    // The relay role, the gateway's dial-out and the CLI's connector, their settings and the
    // framed status (issue 20).
    // +4: RelayIdentitySwap (struct, replace, Debug) and RelayTunnels::identity: a renewed
    // gateway certificate put into service while the gateway runs.
    ("kms_pam::relay", 35),
    ("kms_pam::secret", 13),
    // Issue 28 (8): +6, KMS serving HTTPS: ServerTls (struct, two methods), TlsFileProblem,
    // DEFAULT_TLS_RELOAD_CHECK, ServerConfig::with_tls.
    ("kms_pam::server", 28),
    // +3: `SessionBinding` (what a session's signed record binds besides names), round three.
    // +3: PersonIdentity (and its Display), which sessions name after single sign-on, and
    // SessionBinding::with_identity, so the gateway signs it into the record (issue 22).
    ("kms_pam::session", 51),
    ("kms_pam::time", 4),
    // +4, issue 20: RelayIdentity and its from_cert_der, RELAY_URI_PREFIX,
    // CertificateAuthority::sign_relay_csr (the relay's certificate and how peers check it).
    ("kms_pam::tls", 48),
    // +1: merge (a listener and relays as one acceptor, issue 20).
    ("kms_pam::transport", 13),
    ("kms_pam::transport::memory", 7),
    ("kms_pam::transport::tls", 17),
];

/// Listed lines per module of the crate `crate_name`, from its listing.
pub fn module_counts(crate_name: &str, listing: &str) -> BTreeMap<String, usize> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for line in listing.lines() {
        if line.starts_with('#') || line.starts_with("mod ") || line.trim().is_empty() {
            continue;
        }
        *counts.entry(module_of(crate_name, line)).or_default() += 1;
    }
    counts
}

/// The module of the first path of `crate_name` that `line` names (the crate root if none).
fn module_of(crate_name: &str, line: &str) -> String {
    let prefix = format!("{crate_name}::");
    let Some(start) = line.find(&prefix) else {
        return crate_name.to_owned();
    };
    let path: String = line[start..]
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
        .collect();
    let path = path.trim_end_matches(':');
    match path.rsplit_once("::") {
        Some((module, _item)) => module.to_owned(),
        None => crate_name.to_owned(),
    }
}

/// Fails with one line per module over its budget, or listed without one.
pub fn check(counts: &BTreeMap<String, usize>, budgets: &[(&str, usize)]) -> Result<(), String> {
    let budgets: BTreeMap<&str, usize> = budgets.iter().copied().collect();
    let mut problems = Vec::new();
    for (module, &count) in counts {
        match budgets.get(module.as_str()) {
            Some(&budget) if count > budget => problems.push(format!(
                "module {module} lists {count} items, over its budget of {budget}: make the \
                 new items crate-private or #[doc(hidden)], or raise the budget in \
                 tests/src/public_api/budget.rs in review"
            )),
            Some(_) => {}
            None => problems.push(format!(
                "module {module} lists {count} items and has no budget: add it to \
                 tests/src/public_api/budget.rs"
            )),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTING: &str = "\
# kms_pam public API
fn kms_pam::a::f: fn f ()
struct kms_pam::a::S
impl kms_pam::a::S: fn new () -> Self
impl std :: fmt :: Debug for kms_pam::a::S
use kms_pam::S = kms_pam::a::S
impl< T : X + ? Sized > X for Arc < T >
mod kms_pam::a
";

    #[test]
    fn lines_count_toward_the_module_they_name_first() {
        let counts = module_counts("kms_pam", LISTING);
        let expected: BTreeMap<String, usize> =
            [("kms_pam".to_owned(), 2), ("kms_pam::a".to_owned(), 4)].into();
        assert_eq!(counts, expected);
    }

    #[test]
    fn a_module_one_item_past_its_budget_fails_naming_it() {
        let counts = module_counts("kms_pam", LISTING);
        assert_eq!(check(&counts, &[("kms_pam", 2), ("kms_pam::a", 4)]), Ok(()));
        let err = check(&counts, &[("kms_pam", 2), ("kms_pam::a", 3)]).unwrap_err();
        assert!(
            err.contains("module kms_pam::a lists 4 items, over its budget of 3"),
            "{err}"
        );
        assert!(
            !err.contains("module kms_pam "),
            "only the module over: {err}"
        );
    }

    #[test]
    fn a_module_without_a_budget_fails_naming_it() {
        let counts = module_counts("kms_pam", LISTING);
        let err = check(&counts, &[("kms_pam::a", 4)]).unwrap_err();
        assert!(
            err.contains("module kms_pam lists 2 items and has no budget"),
            "{err}"
        );
    }

    /// The real listing at each module's budget passes; one below any module's count fails and
    /// names that module.
    #[test]
    fn the_crate_fails_one_below_its_budget() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let listing = super::super::listing("kms_pam", &root.join("kms-pam/src/lib.rs"))
            .expect("read the library's source");
        let counts = module_counts("kms_pam", &listing);
        check(&counts, BUDGETS).expect("the crate is within its budgets");
        for (module, &count) in &counts {
            let tight: Vec<(&str, usize)> = BUDGETS
                .iter()
                .map(|&(m, b)| if m == module { (m, count - 1) } else { (m, b) })
                .collect();
            let err = check(&counts, &tight).unwrap_err();
            assert!(
                err.contains(&format!(
                    "module {module} lists {count} items, over its budget"
                )),
                "{err}"
            );
        }
    }
}
