//! `GET /jwks` and `HEAD /jwks`: Tessera's published keys (RFC 7517
//! section 5), public members only, cacheable for `keys.jwks_max_age`.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::server::AppState;

/// `get` also routes HEAD requests, which get the headers and no body. Any
/// origin may read the keys (CORS).
pub fn router() -> Router<AppState> {
    Router::new().route("/jwks", get(jwks).layer(super::cors::public_documents()))
}

async fn jwks(State(state): State<AppState>, request_headers: HeaderMap) -> Response {
    let Some(document) = state.keys.jwks(state.clock.now()) else {
        let body = json!({
            "error": "temporarily_unavailable",
            "error_description": "the key ring is not loaded yet",
        });
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    };
    let max_age = state.config.keys.jwks_max_age.as_duration().as_secs();
    let cache_control = format!("public, max-age={max_age}");
    let cache_headers = [
        (header::CACHE_CONTROL, cache_control),
        (header::ETAG, document.etag.clone()),
    ];
    let not_modified = request_headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| document.matches(value));
    if not_modified {
        return (StatusCode::NOT_MODIFIED, cache_headers).into_response();
    }
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        cache_headers,
        document.body.clone(),
    )
        .into_response()
}
