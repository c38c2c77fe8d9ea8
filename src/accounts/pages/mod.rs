//! The login and consent pages, over the login transaction in `?tx=`,
//! and the account page.
//!
//! Each form carries a CSRF token that is also set in a `SameSite=Strict`
//! cookie and whose digest is stored on the transaction, so a form is
//! accepted only from the browser it was shown to, for that transaction.
//! Each page view issues a new token.

use askama::Template;
use axum::extract::DefaultBodyLimit;
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::login_transactions::{find_login_transaction, issuer_path, return_location};
use super::sessions::{cookie_header, current_session, secure_cookies, session_cookie_name};
use crate::config::Config;
use crate::crypto::random_token;
use crate::http::{error_page, with_security_headers};
use crate::server::AppState;
use crate::store::{LoginOutcome, LoginTransactionRecord, SessionRecord, StoreError};

mod account;
mod consent;
mod login;

/// Largest form body accepted by the pages.
const MAX_FORM_BYTES: usize = 64 * 1024;

const STYLESHEET: &str = include_str!("../../../static/tessera.css");

/// Builds the routes of the login and consent pages and their stylesheet,
/// with security headers.
pub fn router(config: &Config) -> Router<AppState> {
    let pages = Router::new()
        .route("/login", get(login::show).post(login::submit))
        .route("/consent", get(consent::show).post(consent::submit))
        .route("/account", get(account::show))
        .route("/account/withdraw", axum::routing::post(account::withdraw))
        .route("/static/tessera.css", get(stylesheet))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES));
    with_security_headers(pages, config.issuer.starts_with("https://"))
}

async fn stylesheet() -> Response {
    (
        [
            (axum::http::header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (axum::http::header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
        .into_response()
}

fn csrf_cookie_name(config: &Config) -> &'static str {
    if secure_cookies(config) {
        "__Host-tessera_csrf"
    } else {
        "tessera_csrf"
    }
}

/// Returns the value of cookie `name` from the request.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// Issues a new CSRF token for an open transaction: stores its digest and
/// returns the token with its `Set-Cookie` value.
async fn issue_csrf(
    state: &AppState,
    transaction: &LoginTransactionRecord,
) -> Result<Option<(String, String)>, StoreError> {
    let token = random_token();
    let digest = state.data_keys.digester.digest(&token);
    let now = state.clock.now();
    if !state
        .store
        .set_login_csrf(&transaction.id_digest, &digest, now)
        .await?
    {
        return Ok(None);
    }
    let max_age = state.config.login.transaction_ttl.as_duration().as_secs();
    let cookie = cookie_header(
        &state.config,
        csrf_cookie_name(&state.config),
        &token,
        "Strict",
        i64::try_from(max_age).unwrap_or(i64::MAX),
    );
    Ok(Some((token, cookie)))
}

/// True when the form's token equals the cookie's and matches the digest
/// stored on the transaction.
fn csrf_valid(
    state: &AppState,
    headers: &HeaderMap,
    transaction: &LoginTransactionRecord,
    form_token: Option<&str>,
) -> bool {
    let (Some(form_token), Some(cookie_token), Some(stored)) = (
        form_token,
        cookie(headers, csrf_cookie_name(&state.config)),
        transaction.csrf_digest.as_deref(),
    ) else {
        return false;
    };
    let digester = &state.data_keys.digester;
    digester.verify(form_token, stored) && digester.verify(cookie_token, stored)
}

/// Loads the transaction named by a request's `tx`, or the error page.
async fn load_transaction(
    state: &AppState,
    tx: Option<&str>,
) -> Result<(String, LoginTransactionRecord), Response> {
    let Some(id) = tx else {
        return Err(unknown_transaction(state));
    };
    let now = state.clock.now();
    match find_login_transaction(state.store.as_ref(), &state.data_keys.digester, id, now).await {
        Ok(Some(transaction)) if transaction.outcome.is_none() => Ok((id.to_owned(), transaction)),
        Ok(_) => Err(unknown_transaction(state)),
        Err(error) => Err(internal_error(state, &error)),
    }
}

/// Returns the session of the request's cookie if it is live and its user
/// is enabled.
pub(crate) async fn live_session(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<(SessionRecord, crate::store::UserRecord)>, StoreError> {
    let Some(id) = cookie(headers, session_cookie_name(&state.config)) else {
        return Ok(None);
    };
    let now = state.clock.now();
    let store = state.store.as_ref();
    let Some(session) =
        current_session(store, &state.data_keys.digester, &state.config, id, now).await?
    else {
        return Ok(None);
    };
    match store.user_by_id(session.user_id).await? {
        Some(user) if !user.disabled => Ok(Some((session, user))),
        _ => Ok(None),
    }
}

/// Records the outcome and redirects to the transaction's return path.
async fn finish(
    state: &AppState,
    transaction: &LoginTransactionRecord,
    outcome: LoginOutcome,
) -> Response {
    let now = state.clock.now();
    match state
        .store
        .complete_login_transaction(&transaction.id_digest, &outcome, now)
        .await
    {
        Ok(true) => see_other(&return_location(&state.config, &transaction.return_path)),
        Ok(false) => unknown_transaction(state),
        Err(error) => internal_error(state, &error),
    }
}

/// Redirects with 303 See Other to a path on Tessera.
fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => (StatusCode::SEE_OTHER, [(LOCATION, value)]).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Adds a `Set-Cookie` header to a response.
fn with_cookie(mut response: Response, cookie: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(SET_COOKIE, value);
    }
    response
}

/// Renders a page template, or the error page if rendering fails.
fn render(state: &AppState, status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(error) => internal_error(state, &error),
    }
}

fn unknown_transaction(state: &AppState) -> Response {
    error_page(
        StatusCode::BAD_REQUEST,
        &issuer_path(&state.config),
        "Sign-in link expired",
        "This sign-in request is unknown, finished or has expired. \
         Go back to the application and sign in again.",
    )
}

fn form_expired(state: &AppState) -> Response {
    error_page(
        StatusCode::FORBIDDEN,
        &issuer_path(&state.config),
        "Form expired",
        "This form was not accepted because it expired or was sent from another page. \
         Go back to the application and sign in again.",
    )
}

fn internal_error(state: &AppState, error: &(dyn std::error::Error + 'static)) -> Response {
    tracing::error!(error = ?error, "page failed");
    error_page(
        crate::http::failure_status(error),
        &issuer_path(&state.config),
        "Something went wrong",
        "Tessera could not complete this request. Please try again in a moment.",
    )
}
