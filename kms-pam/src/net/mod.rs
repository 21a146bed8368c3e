//! The network floor under every listener and client of the crate: serving one connection
//! ([`conn`]: accept with backoff, HTTP/1.1 or HTTP/2 with a drain), the outbound HTTP(S) client
//! ([`http_client`]), the `Authorization: Bearer` header ([`bearer`]) and the HTTP/2 flow-control
//! windows both ends of the tunnel use ([`http2`]).

pub(crate) mod bearer;
pub(crate) mod conn;
pub(crate) mod http2;
pub(crate) mod http_client;
