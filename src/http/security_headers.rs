//! Security headers for HTML pages: a strict Content-Security-Policy with
//! no script at all, framing denied (clickjacking, RFC 6749 section 10.13),
//! no MIME sniffing, no referrer, and HSTS when the issuer is https. A
//! handler that sets one of these headers itself keeps its own value.

use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY, STRICT_TRANSPORT_SECURITY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::HeaderValue;
use axum::Router;
use tower_http::set_header::SetResponseHeaderLayer;

/// The policy of every page without script. It has no `form-action`:
/// Chromium applies that directive to the redirects that follow a form
/// POST, and the login and consent forms end in a redirect to the client's
/// registered redirect URI, on any origin. The forms' actions are fixed
/// paths on Tessera and no script runs, so nothing can retarget them.
pub const PAGE_CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
    frame-ancestors 'none'; base-uri 'none'";

/// HSTS for an https issuer: one year, subdomains included.
const HSTS: &str = "max-age=31536000; includeSubDomains";

/// Adds the page security headers to every response of `router`.
pub fn with_security_headers<S>(router: Router<S>, https: bool) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let hsts = https.then_some(HeaderValue::from_static(HSTS));
    router
        .layer(SetResponseHeaderLayer::if_not_present(
            CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(PAGE_CSP),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            STRICT_TRANSPORT_SECURITY,
            move |_: &axum::http::Response<axum::body::Body>| hsts.clone(),
        ))
}
