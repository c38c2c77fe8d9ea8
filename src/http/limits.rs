//! Limits on every connection and request, so that no client can hold a
//! connection or a task for long or make the server buffer much:
//!
//! - the request line and headers: at most [`MAX_HEADER_BYTES`] and
//!   [`MAX_HEADERS`] fields. Beyond them hyper sends 431 and closes the
//!   connection. They must arrive within `http.header_read_timeout`, or the
//!   connection is closed without a response. The same timeout closes a
//!   kept-alive connection that sends no next request.
//! - the body: every route reads at most [`MAX_BODY_BYTES`], else 413. The
//!   OAuth endpoints and `/register` send their JSON error with it.
//! - reading the body and sending the response: at most
//!   `http.request_timeout`, else tower-http's timeout sends 408 with an
//!   empty body.
//!
//! Only HTTP/1.1 and 1.0 are served. hyper has no header read timeout for
//! HTTP/2, so cleartext HTTP/2 (prior knowledge) is not offered.

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use hyper::server::conn::http1;
use hyper_util::rt::TokioTimer;
use tower_http::timeout::TimeoutLayer;

use crate::config::HttpSettings;

/// Largest request line plus headers, in bytes.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Most header fields in one request (hyper's default, set here so that it
/// is stated).
pub const MAX_HEADERS: usize = 100;

/// Largest request body any route reads, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Returns the settings of each HTTP/1 connection.
pub fn http1_builder(settings: &HttpSettings) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout.as_duration())
        .max_header_size(MAX_HEADER_BYTES)
        .max_headers(MAX_HEADERS);
    builder
}

/// Returns the body limit every extractor applies. Routes may set a lower
/// one. tower-http's `RequestBodyLimitLayer` is not used because it rejects
/// a large `Content-Length` with a plain-text 413, so the OAuth endpoints
/// could not send their JSON error.
pub fn body_limit() -> DefaultBodyLimit {
    DefaultBodyLimit::max(MAX_BODY_BYTES)
}

/// Returns the layer that ends a request after `http.request_timeout`.
pub fn request_timeout(settings: &HttpSettings) -> TimeoutLayer {
    TimeoutLayer::with_status_code(
        StatusCode::REQUEST_TIMEOUT,
        settings.request_timeout.as_duration(),
    )
}
