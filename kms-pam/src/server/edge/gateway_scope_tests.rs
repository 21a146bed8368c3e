//! The allow-list's patterns and the URL forms that must not slip past them (issue 28 point 6).

use super::*;

fn list(patterns: &[&str]) -> Vec<String> {
    normalise(&patterns.iter().map(|p| (*p).to_owned()).collect::<Vec<_>>()).expect("valid")
}

#[test]
fn an_empty_list_allows_everything_as_before() {
    assert!(allows(&[], "https://anything.example:1234"));
}

#[test]
fn names_suffixes_ports_and_networks_match_what_they_say() {
    let l = list(&[
        "api.corp.internal",
        "*.k8s.corp",
        "10.1.0.0/16:6443",
        "[fd00::/8]:443",
    ]);
    assert!(allows(&l, "https://api.corp.internal:6443"));
    assert!(allows(&l, "https://a.k8s.corp"));
    assert!(allows(&l, "https://a.b.k8s.corp:8443"));
    assert!(
        !allows(&l, "https://k8s.corp"),
        "the suffix itself is not under it"
    );
    assert!(
        !allows(&l, "https://evilk8s.corp"),
        "a label boundary is needed"
    );
    assert!(allows(&l, "https://10.1.2.3:6443"));
    assert!(
        !allows(&l, "https://10.1.2.3:22"),
        "the port is part of the pattern"
    );
    assert!(!allows(&l, "https://10.2.0.1:6443"));
    assert!(allows(&l, "https://[fd12::1]/"), "443 is https's own port");
    assert!(!allows(&l, "https://[fe80::1]/"));
    assert!(!allows(&l, "https://other.corp.internal"));
}

#[test]
fn bypass_forms_are_refused() {
    let l = list(&["*.corp.internal", "10.0.0.5"]);
    for url in [
        // Userinfo is not the host.
        "https://api.corp.internal@192.168.1.1:6443",
        "https://api.corp.internal:x@192.168.1.1",
        // A longer name that merely starts with an allowed one.
        "https://api.corp.internal.evil.example",
        // Decimal, hex and octal spellings of other addresses.
        "https://3232235777",
        "https://0xc0a80101",
        "https://0300.0250.1.1",
        // Another host spelled as a mapped IPv6 address.
        "https://[::ffff:192.168.1.1]",
        // A name allowed as a name says nothing about an IP in the list, and the other way.
        "https://10.0.0.5.nip.io",
        "https://%31%30.0.0.6",
        "https://not a url",
    ] {
        assert!(!allows(&l, url), "{url} must be refused");
    }
    // The same host in other spellings is the same host.
    for url in [
        "https://API.Corp.Internal:6443",
        "https://api.corp.internal.:6443",
        "https://167772165",
        "https://0x0a000005",
        "https://012.0.0.5",
        "https://[::ffff:10.0.0.5]",
        "https://[::ffff:a00:5]:6443",
    ] {
        assert!(allows(&l, url), "{url} is an allowed host");
    }
}

#[test]
fn a_name_pattern_never_matches_an_ip_nor_a_network_a_name() {
    let l = list(&["localhost"]);
    assert!(!allows(&l, "https://127.0.0.1"));
    let l = list(&["127.0.0.0/8"]);
    assert!(!allows(&l, "https://localhost"));
    assert!(allows(&l, "https://127.1"), "127.1 is 127.0.0.1");
}

#[test]
fn patterns_are_normalised_and_bad_ones_say_what_is_accepted() {
    assert_eq!(
        list(&[
            "API.Corp.Internal.",
            "10.9.8.7/8",
            "[FD00::1]:6443",
            "::ffff:10.0.0.1",
            "x.y:1"
        ]),
        [
            "api.corp.internal",
            "10.0.0.0/8",
            "[fd00::1]:6443",
            "10.0.0.1",
            "x.y:1"
        ]
    );
    for bad in [
        "",
        "*",
        "*.",
        "a.*.b",
        "a b",
        "10.0.0.0/33",
        "fd00::/129",
        "10.0.0.0/x",
        "host:0",
        "host:65536",
        "host:-1",
        "[fd00::1",
        "[fd00::1]x",
        "2130706433",
        "0x7f.1",
        "a..b",
        "::ffff:10.0.0.0/104",
        "http://host",
        "host/path",
    ] {
        let err = normalise(&[bad.to_owned()]).expect_err(bad);
        assert!(
            err.message().contains("write a host name"),
            "{bad}: {err:?}"
        );
    }
    let many: Vec<String> = (0..=MAX_PATTERNS).map(|i| format!("h{i}.corp")).collect();
    assert!(normalise(&many).is_err());
}

#[test]
fn the_refusal_names_the_gateway_the_list_and_the_command() {
    let gateway = GatewayRecord {
        id: "g".into(),
        name: "gw-1".into(),
        address: None,
        enrolled: true,
        last_heartbeat: None,
        revoked: false,
        created_at: std::time::SystemTime::UNIX_EPOCH,
        allowed_url_hosts: list(&["*.corp.internal"]),
        reach: Default::default(),
    };
    assert_eq!(
        outside_allow_list(&gateway, "https://api.corp.internal"),
        None
    );
    let message = outside_allow_list(&gateway, "https://u:p@10.0.0.1:6443").expect("refused");
    assert_eq!(
        message,
        "the API server URL https://10.0.0.1:6443/ is outside the allow-list of gateway gw-1 \
         (*.corp.internal); an organisation administrator can change it with \
         `kms-pam gateway update gw-1 --allow-url-host PATTERN`"
    );
}
