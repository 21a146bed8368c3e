//! The service's own routes: `GET /v1/healthz`, and `GET /metrics`, the KMS's Prometheus
//! counters, on the API listener, without authentication (they hold counts and route templates,
//! never a name or a token).

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
