//! End-to-end tests.

mod double;
mod path;
mod support;
mod tunnel;
