//! End-to-end tests.

// Tests: a failed set-up panics with its reason.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod broker;
mod charts;
mod claims;
mod double;
mod engine;
mod hooks;
mod limits;
mod path;
mod public_api;
mod recording;
mod shutdown;
mod support;
mod systemd_units;
mod tunnel;
