//! The route table of docs/api.md, assembled in one visible place.
//!
//! A project's routes (resources, accounts, grants, sessions) are mounted twice: under
//! `/v1/projects/{project}`, and directly under `/v1` for the project `default`, so the documented
//! commands and older clients keep working unchanged. Every route answers through the refusal
//! middleware (`edge/refusals.rs`), which logs, counts and budgets 401s and 403s.
//!
//! It stands above everything it mounts: the handlers (`api/`), the console and the edge's
//! middleware.

use super::api::{
    accounts, audit_trail, certificates, gateway_routes, gateways, grants, health, members,
    projects, resources, session_events, sessions, sso, users,
};
use super::console;
use super::edge::extract::{unknown_route, wrong_method};
use super::edge::refusals;
use super::edge::state::AppState;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use axum::{middleware, Router};

/// Largest request body accepted.
pub(crate) const BODY_LIMIT: usize = 1024 * 1024;
/// Largest batch of audit events accepted (clients split larger ones).
pub(crate) const EVENTS_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// The API router over `state`.
pub(crate) fn build(state: AppState) -> Router {
    let router = Router::new()
        .route("/metrics", get(health::metrics))
        .route("/v1/healthz", get(health::healthz))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/v1/whoami", get(users::whoami))
        .route("/v1/users", post(users::create).get(users::list))
        .route("/v1/users/{name}", delete(users::delete))
        .route("/v1/users/{name}/disable", post(users::disable))
        .route("/v1/users/{name}/enable", post(users::enable))
        .route("/v1/users/{name}/token", post(users::rotate_token))
        .route("/v1/sso/providers", post(sso::create).get(sso::list))
        .route("/v1/sso/providers/names", get(sso::names))
        .route("/v1/sso/providers/{name}", delete(sso::delete))
        .route("/v1/sso/exchange", post(sso::exchange))
        .route("/v1/sso/device", post(sso::start_device))
        .route("/v1/sso/device/poll", post(sso::poll_device))
        .route("/v1/sso/refresh", post(sso::refresh))
        .route("/v1/gateways", post(gateways::create).get(gateways::list))
        .route("/v1/gateways/enroll", post(gateways::enroll))
        .route("/v1/gateways/{name}/revoke", post(gateways::revoke))
        .route(
            "/v1/gateways/{name}",
            get(gateways::show).patch(gateways::update),
        )
        .route("/v1/gateways/{name}/projects", post(gateways::assign))
        .route(
            "/v1/gateways/{name}/projects/{project}",
            delete(gateways::unassign),
        )
        .route("/v1/projects", post(projects::create).get(projects::list))
        .route(
            "/v1/projects/{project}",
            get(projects::show).delete(projects::delete),
        )
        .route("/v1/projects/{project}/members", get(members::list))
        .route(
            "/v1/projects/{project}/members/{user}",
            axum::routing::put(members::set).delete(members::remove),
        )
        .route("/v1/relays/certificate", post(certificates::issue_relay))
        .route("/v1/gateway/heartbeat", post(gateway_routes::heartbeat))
        .route("/v1/gateway/certificate", post(certificates::renew_gateway))
        .route("/v1/gateway/sessions/{id}", get(gateway_routes::session))
        .route(
            "/v1/gateway/sessions/{id}/credential",
            get(gateway_routes::credential),
        )
        .route("/v1/gateway/changes", get(gateway_routes::changes))
        .route("/v1/gateway/audit-key", post(gateway_routes::register_key))
        .route(
            "/v1/gateway/sealing-key",
            post(gateway_routes::register_sealing_key),
        )
        .route("/v1/audit/keys", get(audit_trail::keys))
        .route(
            "/v1/gateway/events",
            post(session_events::ingest).layer(DefaultBodyLimit::max(EVENTS_BODY_LIMIT)),
        );
    let router = project_routes(router, "/v1");
    let router = project_routes(router, "/v1/projects/{project}");
    router
        .merge(console::routes())
        .fallback(unknown_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            refusals::watch_refusals,
        ))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// The routes of a PAM project, under `prefix`.
fn project_routes(router: Router<AppState>, prefix: &str) -> Router<AppState> {
    let at = |path: &str| format!("{prefix}{path}");
    router
        .route(
            &at("/resources"),
            post(resources::create).get(resources::list),
        )
        .route(
            &at("/resources/{name}"),
            get(resources::show)
                .patch(resources::update)
                .delete(resources::delete),
        )
        .route(
            &at("/resources/{resource}/accounts"),
            post(accounts::create),
        )
        .route(
            &at("/resources/{resource}/accounts/{account}"),
            delete(accounts::delete).patch(accounts::update),
        )
        .route(&at("/accounts"), get(accounts::list))
        .route(&at("/grants"), post(grants::create).get(grants::list))
        .route(&at("/grants/{id}"), delete(grants::delete))
        .route(&at("/grants/{id}/revoke"), post(grants::revoke))
        .route(&at("/sessions"), post(sessions::create).get(sessions::list))
        .route(&at("/sessions/{id}"), get(audit_trail::show))
        .route(&at("/sessions/{id}/verify"), get(audit_trail::verify))
        .route(&at("/sessions/{id}/export"), get(audit_trail::export))
        .route(
            &at("/sessions/{id}/recordings/{n}"),
            get(audit_trail::recording),
        )
        .route(&at("/sessions/{id}/end"), post(sessions::end))
        .route(&at("/sessions/{id}/terminate"), post(sessions::terminate))
}
