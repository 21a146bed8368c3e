//! Support for the runnable examples: [`demo::Demo`] starts a complete system in-process (KMS on
//! SQLite, an enrolled gateway, the API server double as the cluster, a resource and an account) so
//! each example can show just its own part.

pub mod demo;
