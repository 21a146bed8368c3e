//! What a gateway may be used for (issue 28 point 6; docs/api.md, "Gateway scope"): the projects
//! an organisation admin assigned it to, and the allow-list of API server URL hosts its
//! resources may have.
//!
//! A pattern is one of
//! - `api.corp.internal`: exactly that host name;
//! - `*.corp.internal`: any name ending in `.corp.internal` (not `corp.internal` itself);
//! - `10.0.0.5`, `fd00::5` (or `[fd00::5]`): exactly that IP address;
//! - `10.0.0.0/8`, `fd00::/8` (or `[fd00::/8]`): any IP address in that network;
//!
//! each optionally followed by `:PORT` (IPv6 then in brackets: `[fd00::/8]:6443`); without a
//! port any port matches. Host names are compared after the URL parser's normalisation (lower
//! case, IPv4 in every numeric spelling made dotted, userinfo apart) and without a trailing dot.
//! A name pattern never matches an IP address and an IP pattern never matches a name: the
//! gateway resolves names as it connects, so a CIDR says nothing about where a name leads. An
//! IPv4-mapped IPv6 address (`[::ffff:10.0.0.1]`) is the IPv4 address it maps.

use std::net::IpAddr;

use url::{Host, Url};

use crate::server::edge::error::ApiError;
use crate::server::edge::state::AppState;
use crate::server::store::GatewayRecord;

/// Most patterns one gateway's allow-list takes.
pub(crate) const MAX_PATTERNS: usize = 64;

/// One parsed allow-list pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Pattern {
    host: HostPattern,
    port: Option<u16>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum HostPattern {
    Name(String),
    Suffix(String),
    Net(IpAddr, u8),
}

/// The host and port a resource URL leads to, as the gateway will dial them.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Target {
    Name(String, u16),
    Ip(IpAddr, u16),
}

impl Pattern {
    /// Parses one pattern; the error says what is accepted.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let fail = |why: &str| {
            Err(format!(
                "invalid URL host pattern {text:?}: {why}; write a host name (api.corp.internal), \
                 *.SUFFIX, an IP address or a CIDR (10.0.0.0/8, fd00::/8), optionally with :PORT \
                 ([IPv6]:PORT)"
            ))
        };
        if text.is_empty() || text.len() > 300 || text.chars().any(|c| !c.is_ascii_graphic()) {
            return fail("empty, too long, or with spaces or other characters");
        }
        let lower = text.to_ascii_lowercase();
        let (host, port) = if let Some(rest) = lower.strip_prefix('[') {
            let Some((inner, after)) = rest.split_once(']') else {
                return fail("a '[' without its ']'");
            };
            match after.strip_prefix(':') {
                Some(port) => (inner.to_owned(), Some(port)),
                None if after.is_empty() => (inner.to_owned(), None),
                None => return fail("text after ']'"),
            }
        } else if lower.matches(':').count() > 1 {
            (lower.clone(), None)
        } else {
            match lower.split_once(':') {
                Some((host, port)) => (host.to_owned(), Some(port)),
                None => (lower.clone(), None),
            }
        };
        let port = match port {
            None => None,
            Some(digits) => match digits.parse::<u16>() {
                Ok(port) if port != 0 && !digits.starts_with(['0', '+']) => Some(port),
                _ => return fail("the port is not a number from 1 to 65535"),
            },
        };
        let host = match parse_host(&host) {
            Ok(host) => host,
            Err(why) => return fail(why),
        };
        Ok(Self { host, port })
    }

    fn matches(&self, target: &Target) -> bool {
        let (host_ok, port) = match (&self.host, target) {
            (HostPattern::Name(name), Target::Name(host, port)) => (name == host, *port),
            (HostPattern::Suffix(suffix), Target::Name(host, port)) => (
                host.len() > suffix.len() + 1
                    && host.ends_with(suffix.as_str())
                    && host[..host.len() - suffix.len()].ends_with('.'),
                *port,
            ),
            (HostPattern::Net(net, bits), Target::Ip(ip, port)) => {
                (in_net(*net, *bits, *ip), *port)
            }
            _ => return false,
        };
        host_ok && self.port.is_none_or(|p| p == port)
    }
}

impl std::fmt::Display for Pattern {
    /// The stored form: lower case, a network's own address, IPv6 in brackets with a port.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let host = match &self.host {
            HostPattern::Name(name) => name.clone(),
            HostPattern::Suffix(suffix) => format!("*.{suffix}"),
            HostPattern::Net(ip, bits) if *bits == full_bits(*ip) => ip.to_string(),
            HostPattern::Net(ip, bits) => format!("{ip}/{bits}"),
        };
        match (self.port, &self.host) {
            (Some(port), HostPattern::Net(IpAddr::V6(_), _)) => write!(f, "[{host}]:{port}"),
            (Some(port), _) => write!(f, "{host}:{port}"),
            (None, _) => f.write_str(&host),
        }
    }
}

fn full_bits(ip: IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

/// An IPv4-mapped IPv6 address is the IPv4 address it maps.
fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn parse_host(host: &str) -> Result<HostPattern, &'static str> {
    if let Some((addr, bits)) = host.split_once('/') {
        let ip: IpAddr = addr.parse().map_err(|_| "not an IP network")?;
        if unmapped(ip) != ip {
            return Err("an IPv4-mapped IPv6 network; write it as an IPv4 one");
        }
        let bits: u8 = bits
            .parse()
            .map_err(|_| "the prefix length is not a number")?;
        if bits > full_bits(ip) || bits.to_string().len() != host.len() - addr.len() - 1 {
            return Err("the prefix length is too long for the address");
        }
        return Ok(HostPattern::Net(network(ip, bits), bits));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        let ip = unmapped(ip);
        return Ok(HostPattern::Net(ip, full_bits(ip)));
    }
    let (suffix, name) = match host.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, host),
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    if name.is_empty() || !name.split('.').all(label_ok) {
        return Err("not a host name ('*' only as a whole first label)");
    }
    // The URL parser reads a name whose last label is a number as an IPv4 address.
    let last = name.rsplit('.').next().unwrap_or(name);
    if last.chars().all(|c| c.is_ascii_digit()) || last.starts_with("0x") {
        return Err("looks like an IP address but is not one in dotted form");
    }
    let name = name.to_owned();
    Ok(if suffix {
        HostPattern::Suffix(name)
    } else {
        HostPattern::Name(name)
    })
}

fn network(ip: IpAddr, bits: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            IpAddr::V4((u32::from(v4) & mask).into())
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & mask).into())
        }
    }
}

fn in_net(net: IpAddr, bits: u8, ip: IpAddr) -> bool {
    net.is_ipv4() == ip.is_ipv4() && network(ip, bits) == net
}

fn target(url: &str) -> Option<Target> {
    let url = Url::parse(url).ok()?;
    let port = url.port_or_known_default()?;
    Some(match url.host()? {
        Host::Domain(name) => {
            let name = name.to_ascii_lowercase();
            let name = name.strip_suffix('.').unwrap_or(&name).to_owned();
            Target::Name(name, port)
        }
        Host::Ipv4(v4) => Target::Ip(IpAddr::V4(v4), port),
        Host::Ipv6(v6) => Target::Ip(unmapped(IpAddr::V6(v6)), port),
    })
}

/// Checks and normalises an allow-list an organisation admin sent.
pub(crate) fn normalise(patterns: &[String]) -> Result<Vec<String>, ApiError> {
    if patterns.len() > MAX_PATTERNS {
        return Err(ApiError::invalid(format!(
            "at most {MAX_PATTERNS} URL host patterns per gateway"
        )));
    }
    let mut out: Vec<String> = Vec::with_capacity(patterns.len());
    for text in patterns {
        let pattern = Pattern::parse(text.trim()).map_err(ApiError::invalid)?;
        let shown = pattern.to_string();
        if !out.contains(&shown) {
            out.push(shown);
        }
    }
    Ok(out)
}

/// Whether `url` is allowed by the patterns (an empty list allows every URL). A stored pattern
/// that no longer parses allows nothing; a URL without a host is never allowed.
pub(crate) fn allows(patterns: &[String], url: &str) -> bool {
    if patterns.is_empty() {
        return true;
    }
    let Some(target) = target(url) else {
        return false;
    };
    patterns
        .iter()
        .filter_map(|p| Pattern::parse(p).ok())
        .any(|p| p.matches(&target))
}

/// `None` if the gateway's allow-list lets a resource have `url`, else why not and who can
/// change it.
pub(crate) fn outside_allow_list(gateway: &GatewayRecord, url: &str) -> Option<String> {
    if allows(&gateway.allowed_url_hosts, url) {
        return None;
    }
    Some(format!(
        "the API server URL {} is outside the allow-list of gateway {} ({}); an organisation \
         administrator can change it with `kms-pam gateway update {} --allow-url-host PATTERN`",
        super::validate::shown_url(url),
        gateway.name,
        gateway.allowed_url_hosts.join(", "),
        gateway.name
    ))
}

/// Refuses (403) the use of `gateway` by project `project` (id, name) unless an organisation
/// administrator assigned it there, and (400) a URL outside the gateway's allow-list.
pub(crate) async fn check_use(
    state: &AppState,
    gateway: &GatewayRecord,
    project_id: &str,
    project: &str,
    url: &str,
) -> Result<(), ApiError> {
    if !state.store.gateway_serves(&gateway.id, project_id).await? {
        return Err(not_assigned(gateway, project));
    }
    match outside_allow_list(gateway, url) {
        Some(message) => Err(ApiError::invalid(message)),
        None => Ok(()),
    }
}

/// The refusal for a gateway that is not assigned to the project.
pub(crate) fn not_assigned(gateway: &GatewayRecord, project: &str) -> ApiError {
    ApiError::forbidden(format!(
        "gateway {} is not assigned to project {project}; an organisation administrator can \
         assign it with `kms-pam gateway assign {} {project}`",
        gateway.name, gateway.name
    ))
}

#[cfg(test)]
#[path = "gateway_scope_tests.rs"]
mod tests;
