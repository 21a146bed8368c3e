//! The proxy engine. Both ends of the path are built from it: the CLI's loopback proxy
//! ([`LocalProxy`]) and the gateway ([`GatewayProxy`]).
//!
//! The engine is made of small layers, each in its own module, assembled in one place per side
//! (`gateway.rs`, `local.rs`):
//!
//! - [`headers`]: hop-by-hop removal, `Impersonate-*` removal, credential injection;
//! - [`deadline`]: the session deadline, refusing requests and cutting streams;
//! - [`tap`] and [`stream`]: the audit tap counting bytes, and streaming bodies and upgrades;
//! - [`upstream`]: pooled connections to the API server;
//! - [`tunnel_client`]: the multiplexed tunnel from the local proxy to the gateway;
//! - [`hooks`]: phase methods embedders implement;
//! - [`error`]: errors, and the one edge ([`rescue`]) that turns them into `Status` answers.

pub mod body;
pub mod deadline;
pub mod error;
mod gateway;
pub mod headers;
pub mod hooks;
pub mod http2;
mod local;
pub mod stream;
pub mod tap;
pub mod tunnel_client;
pub mod upstream;

pub use body::ProxyBody;
pub use deadline::SessionDeadline;
pub use error::{rescue, rescue_for, ErrorSource, ProxyError};
pub use gateway::{GatewayProxy, GatewaySession};
pub use hooks::{NoHooks, ProxyHooks, RequestContext};
pub use local::LocalProxy;
pub use upstream::UpstreamClient;
