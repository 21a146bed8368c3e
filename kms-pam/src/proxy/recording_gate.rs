//! The gate in front of upgraded streams: under a resource's default policy
//! ([`UnrecordedStreams::Deny`]) no stream reaches the cluster unless the gateway can record it.
//!
//! The gateway records exec and attach over WebSocket with the channel protocols
//! ([`RECORDED_PROTOCOLS`]). So, before forwarding an upgrade:
//! - a WebSocket exec or attach keeps only the subprotocols the gateway records in its
//!   `Sec-WebSocket-Protocol` offer (the API server can then only pick one of them); with none
//!   left it is refused;
//! - SPDY exec and attach (`KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false`, older clients),
//!   port-forward (SPDY, or SPDY tunnelled in WebSocket: arbitrary TCP, not a terminal) and every
//!   other upgrade (`proxy` subresources, aggregated APIs) are refused;
//!
//! each with a `Status` (403) that says why and what to do. After the `101`, a stream whose
//! subprotocol was not offered (a 502: the API server broke the handshake) or that the recorder
//! would not read is cut before a byte passes. Under [`UnrecordedStreams::Allow`] they all pass,
//! recorded when they can be, their details and byte counts otherwise.

use http::{header, HeaderMap, HeaderValue};

use super::error::ProxyError;
use crate::audit::recording::{is_recorded_protocol, UnrecordedStreams, RECORDED_PROTOCOLS};
use crate::kube::{StreamKind, Verb};

/// Lets an upgrade through, narrowed to what the gateway records, or refuses it.
pub(crate) fn admit_upgrade(
    headers: &mut HeaderMap,
    stream: Option<StreamKind>,
    policy: UnrecordedStreams,
    resource: &str,
) -> Result<(), ProxyError> {
    if policy == UnrecordedStreams::Allow {
        return Ok(());
    }
    let websocket = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket"));
    let terminal = matches!(stream, Some(StreamKind::Exec | StreamKind::Attach));
    if !(terminal && websocket) {
        return Err(refusal(stream, websocket, resource));
    }
    let offered = offered_protocols(headers);
    let kept: Vec<&str> = offered
        .iter()
        .map(String::as_str)
        .filter(|p| is_recorded_protocol(p))
        .collect();
    if kept.is_empty() {
        return Err(ProxyError::forbidden(format!(
            "kms-pam records every exec and attach, and cannot record this one's WebSocket \
             subprotocol ({}); it reads {}, and resource {resource} refuses streams it cannot \
             record (--unrecorded-streams=deny)",
            if offered.is_empty() {
                "none offered".to_owned()
            } else {
                offered.join(", ")
            },
            RECORDED_PROTOCOLS.join(", ")
        )));
    }
    if kept.len() != offered.len() {
        let value = HeaderValue::from_str(&kept.join(", "))
            .map_err(|_| ProxyError::forbidden("unreadable Sec-WebSocket-Protocol header"))?;
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, value);
    }
    Ok(())
}

/// Lets a `proxy` request (to a pod, a service or a node, whatever its method) through only when
/// the resource allows what kms-pam cannot record. Through `nodes/NAME/proxy` the kubelet runs
/// commands in containers (`POST …/proxy/run/NS/POD/CONTAINER`, body `cmd=…`) and serves their
/// logs and files; through pod and service proxies any in-cluster endpoint is reached. None of it
/// is an exec the recorder reads, so under [`UnrecordedStreams::Deny`] it is refused like an
/// unrecorded exec.
pub(crate) fn admit_proxy(
    verb: &Verb,
    policy: UnrecordedStreams,
    resource: &str,
) -> Result<(), ProxyError> {
    if *verb != Verb::Proxy || policy == UnrecordedStreams::Allow {
        return Ok(());
    }
    Err(ProxyError::forbidden(format!(
        "kms-pam cannot record what a proxy request carries to a pod, service or node (through \
         a node's kubelet it runs commands in containers): resource {resource} refuses streams \
         kms-pam cannot record; an administrator can allow them unrecorded with \
         --unrecorded-streams=allow"
    )))
}

/// The WebSocket subprotocols a request offers, in order.
pub(crate) fn offered_protocols(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

/// Refuses a `101` whose WebSocket subprotocol is not one of those `offered`: the API server
/// broke the handshake, and the recorder could read its frames as the wrong protocol.
pub(crate) fn check_answer(offered: &[String], answer: &HeaderMap) -> Result<(), ProxyError> {
    let picked = answer
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .map(|v| v.to_str().map(str::trim));
    match picked {
        None => Ok(()),
        Some(Ok(p)) if offered.iter().any(|o| o == p) => Ok(()),
        Some(p) => Err(ProxyError::upstream(format!(
            "the API server switched to WebSocket subprotocol {:?}, which was not offered ({}); \
             kms-pam closed the stream before any of it passed",
            p.unwrap_or("(unreadable)"),
            if offered.is_empty() {
                "none was".to_owned()
            } else {
                offered.join(", ")
            }
        ))),
    }
}

/// The refusal of a stream the gateway cannot record, saying what to do instead.
pub(crate) fn refusal(stream: Option<StreamKind>, websocket: bool, resource: &str) -> ProxyError {
    let allow = format!(
        "resource {resource} refuses streams kms-pam cannot record; an administrator can allow \
         them unrecorded with --unrecorded-streams=allow"
    );
    let message = match stream {
        Some(StreamKind::Exec | StreamKind::Attach) if !websocket => format!(
            "kms-pam records exec and attach over WebSocket only, and this one uses SPDY: unset \
             KUBECTL_REMOTE_COMMAND_WEBSOCKETS (kubectl 1.31+ uses WebSocket by default), or \
             use a newer client; {allow}"
        ),
        Some(StreamKind::PortForward) => {
            format!("kms-pam cannot record port-forward traffic (arbitrary TCP): {allow}")
        }
        Some(StreamKind::Exec | StreamKind::Attach) => {
            format!("kms-pam cannot record this exec or attach: {allow}")
        }
        _ => format!("kms-pam cannot record this upgraded connection: {allow}"),
    };
    ProxyError::forbidden(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(upgrade: &str, protocols: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::UPGRADE, HeaderValue::from_str(upgrade).unwrap());
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        if let Some(p) = protocols {
            headers.insert(
                header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_str(p).unwrap(),
            );
        }
        headers
    }

    const DENY: UnrecordedStreams = UnrecordedStreams::Deny;

    #[test]
    fn websocket_exec_keeps_only_the_recorded_subprotocols() {
        let mut h = headers(
            "websocket",
            Some("v5.channel.k8s.io, x.example, base64.channel.k8s.io"),
        );
        admit_upgrade(&mut h, Some(StreamKind::Exec), DENY, "prod").unwrap();
        assert_eq!(
            h[header::SEC_WEBSOCKET_PROTOCOL],
            "v5.channel.k8s.io, base64.channel.k8s.io"
        );
        let mut plain = headers("websocket", Some("v4.channel.k8s.io"));
        admit_upgrade(&mut plain, Some(StreamKind::Attach), DENY, "prod").unwrap();
        assert_eq!(plain[header::SEC_WEBSOCKET_PROTOCOL], "v4.channel.k8s.io");
    }

    #[test]
    fn what_cannot_be_recorded_is_refused_with_a_reason() {
        let cases = [
            (headers("SPDY/3.1", None), Some(StreamKind::Exec), "SPDY"),
            (
                headers("websocket", Some("SPDY/3.1+portforward.k8s.io")),
                Some(StreamKind::PortForward),
                "port-forward",
            ),
            (
                headers("SPDY/3.1", None),
                Some(StreamKind::PortForward),
                "port-forward",
            ),
            (
                headers("websocket", Some("x.example")),
                Some(StreamKind::Exec),
                "subprotocol",
            ),
            (
                headers("websocket", None),
                Some(StreamKind::Proxy),
                "upgraded",
            ),
        ];
        for (mut h, stream, says) in cases {
            let err = admit_upgrade(&mut h, stream, DENY, "prod").unwrap_err();
            assert_eq!(err.status(), http::StatusCode::FORBIDDEN);
            assert!(err.message().contains(says), "{}", err.message());
            assert!(err.message().contains("resource prod"), "{}", err.message());
        }
    }

    #[test]
    fn an_answer_must_pick_from_the_offer() {
        let offered = [
            "v5.channel.k8s.io".to_owned(),
            "v4.channel.k8s.io".to_owned(),
        ];
        let answer = |p: &str| headers("websocket", Some(p));
        check_answer(&offered, &answer("v4.channel.k8s.io")).unwrap();
        check_answer(&offered, &headers("websocket", None)).unwrap();
        for picked in ["base64.channel.k8s.io", "x.example"] {
            let err = check_answer(&offered, &answer(picked)).unwrap_err();
            assert_eq!(err.status(), http::StatusCode::BAD_GATEWAY);
            assert!(err.message().contains("not offered"), "{}", err.message());
        }
    }

    #[test]
    fn allow_lets_everything_through_untouched() {
        let mut h = headers("SPDY/3.1", None);
        admit_upgrade(
            &mut h,
            Some(StreamKind::Exec),
            UnrecordedStreams::Allow,
            "p",
        )
        .unwrap();
        let mut w = headers("websocket", Some("x.example"));
        admit_upgrade(
            &mut w,
            Some(StreamKind::Exec),
            UnrecordedStreams::Allow,
            "p",
        )
        .unwrap();
        assert_eq!(w[header::SEC_WEBSOCKET_PROTOCOL], "x.example");
    }
}
