//! Where a request came from, as a session records it.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use http::request::Parts;

/// Longest `User-Agent` kept with a session, in characters.
const USER_AGENT_LIMIT: usize = 256;

/// Where a request came from: the network peer KMS saw and the `User-Agent` it sent (client
/// text: control characters dropped, at most [`USER_AGENT_LIMIT`] characters).
#[derive(Debug, Default)]
pub(crate) struct RequestOrigin {
    pub(crate) address: Option<String>,
    pub(crate) user_agent: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for RequestOrigin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let address = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| peer.ip().to_string());
        let user_agent = parts
            .headers
            .get(http::header::USER_AGENT)
            .map(|value| {
                String::from_utf8_lossy(value.as_bytes())
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(USER_AGENT_LIMIT)
                    .collect::<String>()
                    .trim()
                    .to_owned()
            })
            .filter(|agent| !agent.is_empty());
        Ok(Self {
            address,
            user_agent,
        })
    }
}
