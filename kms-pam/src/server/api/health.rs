//! The service's own routes: `GET /v1/healthz` and `GET /healthz` (the process answers),
//! `GET /readyz` (and the store answers: an orchestrator sends traffic only then), and
//! `GET /metrics`, the KMS's Prometheus counters, on the API listener, without authentication
//! (they hold counts and route templates, never a name or a token).

use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;
use http::header::CONTENT_TYPE;
use serde_json::{json, Value};

use crate::server::edge::state::AppState;

/// `GET /v1/healthz`.
pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: 200 when the store answers a read, 503 (with the reason) when it does not.
pub(crate) async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.latest_seq().await {
        Ok(_) => (http::StatusCode::OK, Json(json!({"status": "ready"}))),
        Err(e) => {
            tracing::warn!(error = %e, "not ready: the store does not answer");
            let body = json!({"status": "not ready", "reason": "the store does not answer"});
            (http::StatusCode::SERVICE_UNAVAILABLE, Json(body))
        }
    }
}

/// `GET /metrics`.
pub(crate) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}
