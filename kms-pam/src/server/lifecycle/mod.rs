//! The session lifecycle: how a session ends ([`ending`]), how its record is sealed
//! ([`sealing`], over the gateways' keys as KMS trusts them, [`keys`]) and read back
//! ([`record`]), who sees it ([`visibility`]), the [`reaper`] (expiry, abandonment), the change
//! log as gateways follow it ([`feed`]), and what a start prepares ([`bootstrap`]).
//!
//! The API handlers, the console and the reaper all end, seal and show sessions through here, so
//! each is done one way. Nothing here is HTTP: no extractor, no response, no route; it stands on
//! the edge's state and error vocabulary and on the store.

pub(crate) mod bootstrap;
pub(crate) mod commands;
pub(crate) mod ending;
pub(crate) mod feed;
pub(crate) mod keys;
pub(crate) mod reaper;
pub(crate) mod record;
pub(crate) mod sealing;
pub(crate) mod visibility;
