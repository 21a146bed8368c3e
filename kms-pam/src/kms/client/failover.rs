//! Several KMS replicas behind one client: which URL a call goes to, and when a failure sends it
//! to the next one.
//!
//! The policy, in one place:
//! - A call goes to the replica that answered last (sticky), starting with the first URL given.
//! - The connection could not be made (refused, no route, connect timeout, TLS handshake): the
//!   request was never sent, so the same call goes to the next URL, whatever its method.
//! - The connection broke or timed out after the request was sent: a `GET` is retried on the next
//!   URL (it changes nothing); any other call returns the error, since the replica may have acted
//!   on it, and the caller decides (the audit upload, for one, is idempotent and retried). The next
//!   call starts at the next URL.
//! - An HTTP answer, even `500` or `503`, is the KMS's answer: no failover. Replicas share one
//!   database, so another replica would say the same.
//! - When every URL failed, the error names each of them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use http::Method;
use url::Url;

use super::error::{ConnectionFailure, KmsError};

/// One KMS replica.
#[derive(Debug)]
pub(super) struct Replica {
    pub(super) base: Url,
    /// The base URL as shown in messages, without a trailing slash.
    pub(super) shown: Arc<str>,
}

/// The replicas of one client and the one in use; shared by the client's clones.
#[derive(Debug)]
pub(super) struct Replicas {
    list: Vec<Replica>,
    /// Every URL, comma-separated, as `KmsClient::base_url` says.
    shown: Arc<str>,
    current: AtomicUsize,
}

/// How one attempt failed to get an answer.
#[derive(Debug)]
pub(super) struct Unanswered {
    /// The `Unreachable` error of this attempt.
    pub(super) error: KmsError,
    /// Whether the request is known not to have been sent (the connection was never made).
    pub(super) never_sent: bool,
}

impl Replicas {
    /// Parses one URL, or several separated by commas. Repeated URLs count once.
    pub(super) fn parse(urls: &str) -> Result<Self, KmsError> {
        let mut list: Vec<Replica> = Vec::new();
        for one in urls.split(',') {
            if one.trim().is_empty() && urls.contains(',') {
                return Err(KmsError::EmptyUrlInList {
                    urls: urls.to_owned(),
                });
            }
            let base = parse_base_url(one)?;
            let shown: Arc<str> = base.as_str().trim_end_matches('/').into();
            if !list.iter().any(|r| r.shown == shown) {
                list.push(Replica { base, shown });
            }
        }
        let shown = list
            .iter()
            .map(|r| &*r.shown)
            .collect::<Vec<_>>()
            .join(",")
            .into();
        Ok(Self {
            list,
            shown,
            current: AtomicUsize::new(0),
        })
    }

    pub(super) fn shown(&self) -> &str {
        &self.shown
    }

    /// The first `http://` URL whose host is not this machine (loopback addresses and
    /// `localhost` are), if any: over it tokens would cross the network in clear.
    pub(super) fn plain_http_remote(&self) -> Option<&str> {
        self.list
            .iter()
            .find(|r| r.base.scheme() == "http" && !is_loopback(&r.base))
            .map(|r| &*r.shown)
    }

    pub(super) fn any_https(&self) -> bool {
        self.list.iter().any(|r| r.base.scheme() == "https")
    }

    /// The replica calls go to now.
    pub(super) fn current(&self) -> &Replica {
        &self.list[self.current_index()]
    }

    fn current_index(&self) -> usize {
        self.current.load(Ordering::Relaxed) % self.list.len()
    }

    /// The order this call tries the replicas in: the current one first, then the others in the
    /// order given.
    pub(super) fn order(&self) -> impl Iterator<Item = (usize, &Replica)> {
        let start = self.current_index();
        let n = self.list.len();
        (0..n).map(move |k| {
            let i = (start + k) % n;
            (i, &self.list[i])
        })
    }

    /// Replica `i` answered: later calls go there.
    pub(super) fn answered(&self, i: usize) {
        self.current.store(i, Ordering::Relaxed);
    }

    /// Replica `i` did not answer: later calls start at the next one.
    pub(super) fn failed(&self, i: usize) {
        let next = (i + 1) % self.list.len();
        // Only if no other call moved on meanwhile.
        let _ = self
            .current
            .compare_exchange(i, next, Ordering::Relaxed, Ordering::Relaxed);
    }
}

/// Whether a call whose attempt failed this way may go to the next replica.
pub(super) fn try_next(method: &Method, failure: &Unanswered) -> bool {
    failure.never_sent || *method == Method::GET || *method == Method::HEAD
}

/// The error when no replica answered: with one URL, its own error; with several, one naming
/// every URL and how each failed.
pub(super) fn none_answered(mut failures: Vec<(Arc<str>, KmsError)>) -> KmsError {
    if failures.len() == 1 {
        if let Some((_, only)) = failures.pop() {
            return only;
        }
    }
    let mut kinds = Vec::new();
    let mut details = Vec::new();
    for (url, error) in &failures {
        let (failure, detail) = match error {
            KmsError::Unreachable {
                failure, detail, ..
            } => (*failure, detail.clone()),
            other => (ConnectionFailure::Other, other.to_string()),
        };
        kinds.push(failure);
        details.push((url.clone(), detail));
    }
    let urls: Vec<&str> = details.iter().map(|(u, _)| &**u).collect();
    let same = details.windows(2).all(|w| w[0].1 == w[1].1);
    let detail = match details.first() {
        Some((_, first)) if same => first.clone(),
        _ => details
            .iter()
            .map(|(u, d)| format!("{u}: {d}"))
            .collect::<Vec<_>>()
            .join("; "),
    };
    KmsError::Unreachable {
        url: urls.join(", "),
        failure: kinds.first().copied().unwrap_or(ConnectionFailure::Other),
        detail,
    }
}

/// Whether the URL's host is this machine: `localhost` (and names under it), `127.0.0.0/8`,
/// `::1` (also as an IPv4-mapped address).
fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        None => false,
    }
}

fn parse_base_url(base_url: &str) -> Result<Url, KmsError> {
    let invalid = |why: &str| KmsError::InvalidUrl {
        url: base_url.to_owned(),
        reason: why.to_owned(),
    };
    let url = Url::parse(base_url.trim()).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("use an http:// or https:// URL"));
    }
    if url.host().is_none() || url.cannot_be_a_base() {
        return Err(invalid("it has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("remove the query or fragment"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn down(url: &str, failure: ConnectionFailure, detail: &str) -> (Arc<str>, KmsError) {
        (
            url.into(),
            KmsError::Unreachable {
                url: url.to_owned(),
                failure,
                detail: detail.to_owned(),
            },
        )
    }

    #[test]
    fn a_list_is_parsed_trimmed_and_without_repeats() {
        let replicas =
            Replicas::parse("http://a:1/, https://b:2/kms ,http://a:1").expect("two URLs");
        assert_eq!(replicas.shown(), "http://a:1,https://b:2/kms");
        assert!(replicas.any_https());
        let order: Vec<&str> = replicas.order().map(|(_, r)| &*r.shown).collect();
        assert_eq!(order, ["http://a:1", "https://b:2/kms"]);
    }

    #[test]
    fn only_plain_http_to_another_host_is_flagged() {
        for local in [
            "http://127.0.0.1:8080",
            "http://127.3.2.1",
            "http://localhost:1/kms",
            "http://LOCALHOST.:1",
            "http://kms.localhost",
            "http://[::1]:8080",
            "http://[::ffff:127.0.0.1]:1",
            "https://kms.example.com,https://10.0.0.1",
        ] {
            let replicas = Replicas::parse(local).unwrap();
            assert_eq!(replicas.plain_http_remote(), None, "{local}");
        }
        for (urls, flagged) in [
            ("http://kms.example.com", "http://kms.example.com"),
            ("http://10.0.0.1:8080", "http://10.0.0.1:8080"),
            ("http://[fd00::1]:8080", "http://[fd00::1]:8080"),
            (
                "http://localhost.example.com",
                "http://localhost.example.com",
            ),
            ("https://a,http://127.0.0.1,http://b:1", "http://b:1"),
        ] {
            let replicas = Replicas::parse(urls).unwrap();
            assert_eq!(replicas.plain_http_remote(), Some(flagged), "{urls}");
        }
    }

    #[test]
    fn bad_lists_are_refused_naming_the_bad_entry() {
        let err = Replicas::parse("http://a:1,,http://b:2").unwrap_err();
        assert!(err.to_string().contains("an empty entry"), "{err}");
        let err = Replicas::parse("http://a:1,ftp://b").unwrap_err();
        assert!(err.to_string().contains("\"ftp://b\""), "{err}");
        assert!(matches!(err, KmsError::InvalidUrl { .. }), "{err:?}");
    }

    #[test]
    fn the_next_calls_stick_with_the_replica_that_answered() {
        let replicas = Replicas::parse("http://a,http://b,http://c").unwrap();
        replicas.failed(0);
        assert_eq!(&*replicas.current().shown, "http://b");
        let order: Vec<usize> = replicas.order().map(|(i, _)| i).collect();
        assert_eq!(order, [1, 2, 0]);
        replicas.answered(2);
        assert_eq!(&*replicas.current().shown, "http://c");
        // A late failure report about a replica no longer in use changes nothing.
        replicas.failed(0);
        assert_eq!(&*replicas.current().shown, "http://c");
        replicas.failed(2);
        assert_eq!(&*replicas.current().shown, "http://a");
    }

    #[test]
    fn only_unsent_requests_and_reads_go_to_the_next_replica() {
        let refused = |never_sent| Unanswered {
            error: down("http://a", ConnectionFailure::Refused, "connection refused").1,
            never_sent,
        };
        assert!(try_next(&Method::POST, &refused(true)));
        assert!(try_next(&Method::DELETE, &refused(true)));
        assert!(try_next(&Method::GET, &refused(false)));
        assert!(!try_next(&Method::POST, &refused(false)));
        assert!(!try_next(&Method::DELETE, &refused(false)));
    }

    #[test]
    fn when_all_are_down_the_error_names_every_url() {
        let err = none_answered(vec![
            down(
                "http://a:1",
                ConnectionFailure::Refused,
                "connection refused",
            ),
            down(
                "http://b:2",
                ConnectionFailure::Refused,
                "connection refused",
            ),
        ]);
        assert_eq!(
            err.to_string(),
            "cannot reach KMS at http://a:1, http://b:2: connection refused"
        );
        assert!(err.is_transient());
        let err = none_answered(vec![
            down(
                "http://a:1",
                ConnectionFailure::Refused,
                "connection refused",
            ),
            down(
                "http://b:2",
                ConnectionFailure::Timeout,
                "connection timed out",
            ),
        ]);
        assert_eq!(
            err.to_string(),
            "cannot reach KMS at http://a:1, http://b:2: http://a:1: connection refused; \
             http://b:2: connection timed out"
        );
        assert_eq!(err.connection_failure(), Some(ConnectionFailure::Refused));
        let one = none_answered(vec![down(
            "http://a:1",
            ConnectionFailure::Timeout,
            "connection timed out",
        )]);
        assert_eq!(
            one.to_string(),
            "cannot reach KMS at http://a:1: connection timed out"
        );
    }
}
