//! End-to-end tests.

mod double;
mod hooks;
mod path;
mod support;
mod tunnel;
