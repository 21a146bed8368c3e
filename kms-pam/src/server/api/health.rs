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

/// How long `/readyz` waits for the store: probes time out in seconds, and a store that
/// takes longer is not one to send traffic to.
const READY_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);

/// `GET /readyz`: 200 when the store answers a read within [`READY_WITHIN`], 503 (with the
/// reason) when it does not.
pub(crate) async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    // The store's own error stays in the log: this route answers anyone.
    let reason = match tokio::time::timeout(READY_WITHIN, state.store.latest_seq()).await {
        Ok(Ok(_)) => return (http::StatusCode::OK, Json(json!({"status": "ready"}))),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "not ready: the store does not answer");
            "the store does not answer".to_owned()
        }
        Err(_) => {
            tracing::warn!(within = ?READY_WITHIN, "not ready: the store did not answer in time");
            format!("the store did not answer within {READY_WITHIN:?}")
        }
    };
    let body = json!({"status": "not ready", "reason": reason});
    (http::StatusCode::SERVICE_UNAVAILABLE, Json(body))
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
