//! HTTP layer: the router, shared middleware and response helpers.

use axum::http::{HeaderMap, HeaderName, Request};
use axum::Router;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::server::AppState;

pub mod client_ip;
pub mod cors;
pub mod error;
mod error_page;
pub mod form;
mod health;
mod jwks;
pub mod limits;
pub mod metrics;
pub mod page_extract;
pub mod rate_limit;
mod security_headers;

pub use error_page::{error_page, failure_status};
pub use security_headers::{with_security_headers, PAGE_CSP};

/// Header carrying the request id, set when the client sent none.
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Builds the application router with its middleware.
pub fn router(state: AppState) -> Router {
    let middleware = ServiceBuilder::new()
        .layer(axum::middleware::map_request(drop_invalid_request_id))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::audit::with_request_context,
        ))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(axum::middleware::from_fn(metrics::track_requests))
        .layer(limits::request_timeout(&state.config.http))
        .layer(limits::body_limit());

    // Every protocol route lives under the issuer's path, so that an issuer
    // such as https://id.example.com/tenant-a serves /tenant-a/jwks and the
    // URLs built from the issuer are the ones served. Probes and the RFC 8414
    // metadata document stay at the root.
    let protocol = Router::new()
        .merge(crate::oauth::register::router(&state))
        .merge(crate::oauth::token::router(&state))
        .merge(crate::oauth::introspect::router(&state))
        .merge(crate::oauth::revoke::router(&state))
        .merge(crate::oauth::discovery::router())
        .merge(jwks::router())
        .merge(crate::accounts::router(&state.config))
        .merge(crate::oauth::authorize::router(&state.config))
        .merge(crate::oidc::router(&state));
    let issuer_path = issuer_path(&state.config.issuer);
    let root = health::router().merge(crate::oauth::discovery::root_router(&issuer_path));
    let routes = if issuer_path.is_empty() {
        root.merge(protocol)
    } else {
        root.nest(&issuer_path, protocol)
    };

    routes.layer(middleware).with_state(state)
}

/// Returns the path of the issuer URL without a trailing slash: empty for
/// `https://id.example.com`, `/tenant-a` for `https://id.example.com/tenant-a`.
pub fn issuer_path(issuer: &str) -> String {
    url::Url::parse(issuer)
        .map(|url| url.path().trim_end_matches('/').to_owned())
        .unwrap_or_default()
}

/// Maximum length of a request id kept from a client; a longer one is
/// replaced.
const MAX_REQUEST_ID_BYTES: usize = 128;

/// Removes a client's `x-request-id` unless it is one value of at most
/// 128 letters, digits and `-_.:`, so that the generated id replaces it. The
/// id is logged, echoed and stored in audit events, where a crafted one
/// could forge log lines or fields.
async fn drop_invalid_request_id<B>(mut request: Request<B>) -> Request<B> {
    let headers = request.headers();
    let valid = match headers.get_all(&REQUEST_ID).iter().collect::<Vec<_>>()[..] {
        [] => true,
        [value] => is_request_id(value.as_bytes()),
        _ => false,
    };
    if !valid {
        request.headers_mut().remove(&REQUEST_ID);
    }
    request
}

fn is_request_id(value: &[u8]) -> bool {
    !value.is_empty()
        && value.len() <= MAX_REQUEST_ID_BYTES
        && value
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Returns the request id that [`router`] makes sure every request carries.
pub fn request_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(&REQUEST_ID)
        .and_then(|value| value.to_str().ok())
}

/// Opens one span per request. Only the path is recorded: query strings can carry
/// codes and tokens, which must never reach a log.
fn request_span<B>(request: &Request<B>) -> tracing::Span {
    let request_id = request_id(request.headers()).unwrap_or("-");
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %request_id,
    )
}
