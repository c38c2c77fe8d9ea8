//! Liveness (`/healthz`) and readiness (`/readyz`) probes.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::server::AppState;

/// How long readiness waits for the store before returning 503.
const STORE_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// Reports that the process is up and serving HTTP.
async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Reports whether the instance can serve traffic: its key ring must be
/// loaded and its store must respond.
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    if !state.keys.is_loaded() {
        tracing::warn!("readiness check failed: key ring not loaded");
        return not_ready("key ring not loaded");
    }
    let check = tokio::time::timeout(STORE_CHECK_TIMEOUT, state.store.ping()).await;
    match check {
        Ok(Ok(())) => (StatusCode::OK, Json(json!({ "status": "ready" }))),
        Ok(Err(error)) => {
            tracing::warn!(error = %error, "readiness check failed: store unreachable");
            not_ready("store unreachable")
        }
        Err(_) => {
            tracing::warn!("readiness check failed: store timed out");
            not_ready("store timed out")
        }
    }
}

fn not_ready(reason: &str) -> (StatusCode, Json<serde_json::Value>) {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({ "status": "unavailable", "reason": reason })),
    )
}
