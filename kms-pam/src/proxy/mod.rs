//! The proxy engine. Both ends of the path are built from it: the CLI's loopback proxy
//! ([`LocalProxy`]) and the gateway ([`GatewayProxy`]).
//!
//! An embedder assembles the gateway's request pipeline with [`Pipeline::builder`]: stages of
//! their own ([`ProxyHooks`], one method per phase, with per-request state in
//! [`RequestContext::state`]) before or after the built-in session check, the upstream client
//! ([`UpstreamConnector`], [`UpstreamClient`]; [`PooledConnector`] by default), observers
//! ([`crate::metrics::GatewayObserver`]) and the exec recording settings. The local proxy takes
//! stages too ([`LocalProxy::with_stage`]).
//!
//! Inside, the engine is made of small layers, each in its own private module, assembled in one
//! place per side (`gateway.rs`, `local.rs`): header policy and credential injection, the session
//! deadline, the audit tap and streaming bodies, the upstream pools, the tunnel client, and the
//! one edge ([`rescue`]) that turns errors into `Status` answers.

pub(crate) mod body;
pub(crate) mod deadline;
mod error;
mod gateway;
// The header policy is internal; kms-pam's own micro-benchmarks reach it through a feature
// that is not part of the API.
#[cfg(feature = "bench-internals")]
#[doc(hidden)]
pub mod headers;
#[cfg(not(feature = "bench-internals"))]
pub(crate) mod headers;
mod hooks;
pub(crate) mod in_flight;
mod local;
mod pipeline;
pub(crate) mod recorder;
mod recording_gate;
pub(crate) mod stream;
pub(crate) mod tap;
pub(crate) mod tunnel_client;
mod upstream;

pub use body::{empty, full, BoxError, ProxyBody};
pub use error::{rescue, rescue_for, ErrorSource, ProxyError};
pub use gateway::{GatewayProxy, GatewaySession};
pub use hooks::{NoHooks, ProxyHooks, ProxySide, RequestContext, RequestOutcome};
pub use local::LocalProxy;
pub use pipeline::{Pipeline, PipelineBuilder};
#[cfg(test)]
pub(crate) use upstream::unreachable_message;
pub use upstream::{PooledConnector, UpstreamClient, UpstreamConnector};

pub(crate) use deadline::SessionDeadline;
