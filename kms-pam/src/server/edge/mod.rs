//! The HTTP edge: what every request passes through and what every handler shares.
//!
//! The state handlers share ([`state`], built from its components: the change [`feed`], the
//! [`metrics`] counters, the [`failure_budget`]); what a failure is ([`error`]) and how it
//! answers, with the body, query and path extractors ([`extract`]); who is calling ([`auth`]),
//! who they are in a project ([`callers`]) and the rights a route asks of them ([`rights`]); the
//! refusal middleware ([`refusals`]) and the body read deadline ([`body_deadline`]); checks on
//! what callers send ([`validate`], [`recording`]), what a gateway may be used for
//! ([`gateway_scope`]), path parameters ([`paths`]), a request's
//! origin ([`origin`]) and records as the API shows them ([`views`]).
//!
//! Nothing here imports the lifecycle, the handlers or the console: they stand on it.

pub(crate) mod auth;
pub(crate) mod body_deadline;
pub(crate) mod callers;
pub(crate) mod error;
pub(crate) mod extract;
pub(crate) mod failure_budget;
pub(crate) mod feed;
pub(crate) mod gateway_scope;
pub(crate) mod metrics;
pub(crate) mod origin;
pub(crate) mod paths;
pub(crate) mod recording;
pub(crate) mod refusals;
pub(crate) mod rights;
pub(crate) mod state;
pub(crate) mod validate;
pub(crate) mod views;
