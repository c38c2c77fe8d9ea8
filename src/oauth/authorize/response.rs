//! Authorization responses: a redirect with the parameters in the query
//! (RFC 6749 section 4.1.2), or an auto-submitting form that posts them
//! (OAuth 2.0 Form Post Response Mode). Every response carries `iss`
//! (RFC 9207) and the request's `state` when it had one.

use askama::Template;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, LOCATION};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha256};

use super::request::{AuthorizeError, ResponseMode, ResponseTarget};

/// The one script of the form_post page, allowed by its hash.
const AUTO_SUBMIT: &str = "document.forms[0].submit();";

#[derive(Template)]
#[template(path = "form_post.html")]
struct FormPostPage<'a> {
    action: &'a str,
    fields: Vec<(&'a str, &'a str)>,
    script: &'a str,
}

/// Sends a code to the client.
pub fn success(target: &ResponseTarget, issuer: &str, code: &str) -> Response {
    respond(target, &[("code", code)], issuer)
}

/// Sends an error to the client.
pub fn error(target: &ResponseTarget, issuer: &str, error: AuthorizeError) -> Response {
    respond(
        target,
        &[
            ("error", error.code),
            ("error_description", error.description),
        ],
        issuer,
    )
}

fn respond(target: &ResponseTarget, fields: &[(&str, &str)], issuer: &str) -> Response {
    let mut all: Vec<(&str, &str)> = fields.to_vec();
    if let Some(state) = &target.state {
        all.push(("state", state));
    }
    all.push(("iss", issuer));
    match target.mode {
        ResponseMode::Query => redirect(&target.redirect_uri, &all),
        ResponseMode::FormPost => form_post(&target.redirect_uri, &all),
    }
}

/// 302 to the redirect URI with the fields added to its query.
fn redirect(redirect_uri: &str, fields: &[(&str, &str)]) -> Response {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    let separator = if redirect_uri.contains('?') { '&' } else { '?' };
    let location = format!("{redirect_uri}{separator}{query}");
    match HeaderValue::from_str(&location) {
        Ok(value) => (
            StatusCode::FOUND,
            [
                (LOCATION, value),
                (CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The form_post page: HTML-escaped values, one script allowed by hash, a
/// `<noscript>` button, `form-action` and `frame-ancestors` limited to the
/// redirect URI's origin (the page has no control worth framing, and
/// silent renewal from the client's own page must work).
fn form_post(redirect_uri: &str, fields: &[(&str, &str)]) -> Response {
    let page = FormPostPage {
        action: redirect_uri,
        fields: fields.to_vec(),
        script: AUTO_SUBMIT,
    };
    let html = match page.render() {
        Ok(html) => html,
        Err(error) => {
            tracing::error!(%error, "cannot render the form_post page");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let csp = form_post_csp(redirect_uri);
    let mut response = (StatusCode::OK, Html(html)).into_response();
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(value) = HeaderValue::from_str(&csp) {
        headers.insert(CONTENT_SECURITY_POLICY, value);
    }
    response
}

fn form_post_csp(redirect_uri: &str) -> String {
    let hash = STANDARD.encode(Sha256::digest(AUTO_SUBMIT.as_bytes()));
    let (form_action, ancestors) = match url::Url::parse(redirect_uri) {
        Ok(url) if url.origin().is_tuple() => {
            let origin = url.origin().ascii_serialization();
            (origin.clone(), origin)
        }
        Ok(url) => (format!("{}:", url.scheme()), "'none'".to_owned()),
        Err(_) => ("'none'".to_owned(), "'none'".to_owned()),
    };
    format!(
        "default-src 'none'; script-src 'sha256-{hash}'; form-action {form_action}; \
         frame-ancestors {ancestors}; base-uri 'none'"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(mode: ResponseMode, state: Option<&str>) -> ResponseTarget {
        ResponseTarget {
            redirect_uri: "https://rp.test/cb?x=1".into(),
            mode,
            state: state.map(str::to_owned),
        }
    }

    #[test]
    fn query_response_appends_to_existing_query() {
        let response = success(
            &target(ResponseMode::Query, Some("a b")),
            "https://as.test",
            "c1",
        );
        assert_eq!(response.status(), StatusCode::FOUND);
        assert_eq!(
            response.headers()[LOCATION],
            "https://rp.test/cb?x=1&code=c1&state=a+b&iss=https%3A%2F%2Fas.test"
        );
    }

    #[test]
    fn error_without_state_has_no_state() {
        let denied = AuthorizeError::new("access_denied", "the user denied the request");
        let response = error(
            &target(ResponseMode::Query, None),
            "https://as.test",
            denied,
        );
        let location = response.headers()[LOCATION].to_str().unwrap();
        assert!(location.contains("error=access_denied"), "{location}");
        assert!(!location.contains("state="), "{location}");
    }

    #[tokio::test]
    async fn form_post_escapes_values() {
        let state = "<script>x</script>\"'";
        let response = success(
            &target(ResponseMode::FormPost, Some(state)),
            "https://as.test",
            "c1",
        );
        assert_eq!(response.status(), StatusCode::OK);
        let csp = response.headers()[CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(csp.contains("form-action https://rp.test;"), "{csp}");
        assert!(csp.contains("frame-ancestors https://rp.test;"), "{csp}");
        assert!(csp.contains("script-src 'sha256-"), "{csp}");
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let html = String::from_utf8(body.to_vec()).unwrap();
        assert!(!html.contains("<script>x"), "{html}");
        assert!(
            html.contains("value=\"&#60;script&#62;x&#60;/script&#62;"),
            "{html}"
        );
        assert!(html.contains("<noscript>"), "{html}");
        assert!(
            html.contains(&format!("<script>{AUTO_SUBMIT}</script>")),
            "{html}"
        );
    }
}
