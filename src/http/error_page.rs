//! The error page for requests that must not redirect. It states the reason
//! in fixed words and never shows a value from the request.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorTemplate<'a> {
    base_path: &'a str,
    title: &'a str,
    message: &'a str,
}

/// Renders the error page with `status`. `base_path` is the issuer's path.
pub fn error_page(status: StatusCode, base_path: &str, title: &str, message: &str) -> Response {
    let page = ErrorTemplate {
        base_path,
        title,
        message,
    };
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(error) => {
            tracing::error!(%error, "cannot render the error page");
            (
                status,
                Html(String::from("<!doctype html><title>Error</title>")),
            )
                .into_response()
        }
    }
}

/// Returns the status of a page request that failed on Tessera's side: 503
/// while the database cannot serve requests (so the "try again in a moment"
/// the page says is true), else 500.
pub fn failure_status(error: &(dyn std::error::Error + 'static)) -> StatusCode {
    if crate::store::caused_by_unavailable_store(error) {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    }
}
