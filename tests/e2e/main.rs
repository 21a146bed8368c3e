//! End-to-end tests.

mod double;
mod engine;
mod hooks;
mod path;
mod support;
mod tunnel;
