//! The route table of docs/api.md, assembled in one visible place.

use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::error::{unknown_route, wrong_method};
use super::state::AppState;
use super::{
    accounts, audit_trail, changes, events, gateway_api, gateways, grants, history, resources,
    sessions, users,
};

/// Largest request body accepted.
pub(crate) const BODY_LIMIT: usize = 1024 * 1024;
/// Largest batch of audit events accepted (clients split larger ones).
pub(crate) const EVENTS_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// The API router over `state`.
pub(crate) fn build(state: AppState) -> Router {
    Router::new()
        .route("/v1/healthz", get(healthz))
        .route("/v1/whoami", get(users::whoami))
        .route("/v1/users", post(users::create).get(users::list))
        .route("/v1/gateways", post(gateways::create).get(gateways::list))
        .route("/v1/gateways/enroll", post(gateways::enroll))
        .route(
            "/v1/resources",
            post(resources::create).get(resources::list),
        )
        .route(
            "/v1/resources/{name}",
            get(resources::show).delete(resources::delete),
        )
        .route("/v1/resources/{resource}/accounts", post(accounts::create))
        .route(
            "/v1/resources/{resource}/accounts/{account}",
            delete(accounts::delete),
        )
        .route("/v1/accounts", get(accounts::list))
        .route("/v1/grants", post(grants::create).get(grants::list))
        .route("/v1/grants/{id}", delete(grants::delete))
        .route("/v1/sessions", post(sessions::create).get(sessions::list))
        .route("/v1/sessions/{id}", get(history::show))
        .route("/v1/sessions/{id}/verify", get(history::verify))
        .route("/v1/sessions/{id}/export", get(audit_trail::export))
        .route("/v1/audit/keys", get(audit_trail::keys))
        .route("/v1/gateway/audit-key", post(audit_trail::register_key))
        .route("/v1/sessions/{id}/recordings/{n}", get(history::recording))
        .route("/v1/sessions/{id}/end", post(sessions::end))
        .route("/v1/sessions/{id}/terminate", post(sessions::terminate))
        .route("/v1/gateway/heartbeat", post(gateway_api::heartbeat))
        .route("/v1/gateway/sessions/{id}", get(gateway_api::session))
        .route(
            "/v1/gateway/sessions/{id}/credential",
            get(gateway_api::credential),
        )
        .route("/v1/gateway/changes", get(changes::changes))
        .route(
            "/v1/gateway/events",
            post(events::ingest).layer(DefaultBodyLimit::max(EVENTS_BODY_LIMIT)),
        )
        .fallback(unknown_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// `GET /v1/healthz`.
async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}
