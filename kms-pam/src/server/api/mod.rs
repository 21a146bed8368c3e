//! The API handlers, one file per area of docs/api.md's endpoint tables, and nothing else: each
//! handler takes the extractors of the edge (`edge/`) that say who may call it, works through
//! the store and the session lifecycle (`lifecycle/`), and answers with the edge's views.
//! `router.rs` mounts them.
//!
//! | file | routes |
//! |---|---|
//! | [`health`] | `/v1/healthz`, `/metrics` |
//! | [`users`] | `/v1/whoami`, `/v1/users…` (disable, enable, token, delete) |
//! | [`gateways`] | `/v1/gateways…` (create, list, enroll, revoke) |
//! | [`gateway_routes`] | `/v1/gateway/…`: heartbeat, sessions, credential, audit key, changes |
//! | [`certificates`] | `/v1/gateway/certificate` (renewal), `/v1/relays/certificate` |
//! | [`projects`], [`members`] | `/v1/projects…`, `…/members…` |
//! | [`resources`], [`accounts`], [`grants`] | a project's `…/resources`, `…/accounts`, `…/grants` |
//! | [`sessions`] | a project's `…/sessions` (open, list, end, terminate) |
//! | [`audit_trail`] | `…/sessions/{id}` (history), `/verify`, `/export`, `/recordings/{n}`, `/v1/audit/keys` |
//! | [`session_events`] | `/v1/gateway/events` |
//! | [`sso`] | `/v1/sso/…`: providers, the CLI's exchange, device sign-in, refresh |
//!
//! `POST /v1/console/links` belongs to the console (`console/signin.rs`).

pub(crate) mod accounts;
pub(crate) mod audit_trail;
pub(crate) mod certificates;
pub(crate) mod gateway_routes;
pub(crate) mod gateways;
pub(crate) mod grants;
pub(crate) mod health;
pub(crate) mod members;
pub(crate) mod projects;
pub(crate) mod resources;
pub(crate) mod session_events;
pub(crate) mod sessions;
pub(crate) mod sso;
pub(crate) mod users;
