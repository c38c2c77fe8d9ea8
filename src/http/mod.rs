//! HTTP layer: the router, shared middleware and response helpers.

use std::time::Duration;

use axum::http::{HeaderName, Request};
use axum::Router;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::server::AppState;

pub mod error;
pub mod form;
mod health;
mod jwks;

/// Header carrying the request id, set when the client sent none.
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Upper bound on handling one request, so a stuck request frees its task.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Builds the application router with its middleware.
pub fn router(state: AppState) -> Router {
    let middleware = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ));

    let endpoints = Router::new()
        .merge(crate::oauth::register::router())
        .merge(crate::oauth::token::router())
        .merge(crate::oauth::introspect::router())
        .merge(crate::oauth::revoke::router())
        .merge(crate::oauth::discovery::router())
        .merge(jwks::router());
    // An issuer with a path mounts every endpoint under that path, so the
    // URLs built from the issuer are the ones served.
    let issuer_path = crate::oauth::discovery::issuer_path(&state.config.issuer);
    let endpoints = if issuer_path.is_empty() {
        endpoints
    } else {
        Router::new().nest(&issuer_path, endpoints)
    };

    Router::new()
        .merge(health::router())
        .merge(crate::oauth::discovery::root_router(&issuer_path))
        .merge(endpoints)
        .layer(middleware)
        .with_state(state)
}

/// One span per request. Only the path is recorded: query strings can carry
/// codes and tokens, which must never reach a log.
fn request_span<B>(request: &Request<B>) -> tracing::Span {
    let request_id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %request_id,
    )
}
