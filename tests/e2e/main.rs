//! End-to-end tests.

mod double;
mod engine;
mod hooks;
mod limits;
mod path;
mod public_api;
mod support;
mod tunnel;
