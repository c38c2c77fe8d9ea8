//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) at
//! `/logout`: `id_token_hint`, `client_id`, `post_logout_redirect_uri` and
//! `state`.
//!
//! Tessera redirects only to a URI registered in the client's
//! `post_logout_redirect_uris`, compared byte for byte. With a valid
//! `id_token_hint` for the signed-in user, the session ends at once. In
//! every other case the user confirms first, through a form protected by
//! a double-submit CSRF cookie, and only then does the session end and the
//! redirect (if any) happen. Offline refresh tokens survive logout: that
//! is what offline access means.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;

use crate::accounts::live_session;
use crate::accounts::login_transactions::issuer_path;
use crate::accounts::sessions::{cookie_header, secure_cookies, session_cookie_name};
use crate::config::Config;
use crate::crypto::random_token;
use crate::http::page_extract::{PageForm, PageQuery};
use crate::http::{error_page, with_security_headers};
use crate::keys::KeyRing;
use crate::server::AppState;
use crate::store::{AuditEvent, Client, SessionRecord};

/// Characters left unencoded in `state`: RFC 3986 unreserved.
const STATE_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

const MAX_PARAM_BYTES: usize = 4096;

pub fn router(config: &Config) -> Router<AppState> {
    let routes = Router::new().route("/logout", get(show).post(submit));
    with_security_headers(routes, config.issuer.starts_with("https://"))
}

#[derive(Deserialize, Default)]
pub struct LogoutParams {
    id_token_hint: Option<String>,
    client_id: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
    csrf: Option<String>,
}

#[derive(Template)]
#[template(path = "logout.html")]
struct ConfirmPage<'a> {
    base_path: &'a str,
    csrf: &'a str,
    client_id: Option<&'a str>,
    post_logout_redirect_uri: Option<&'a str>,
    state: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "signed_out.html")]
struct SignedOutPage<'a> {
    base_path: &'a str,
}

/// The request after checking: whose URI it is and whether it is allowed.
struct Checked {
    client: Option<Arc<Client>>,
    redirect: Option<String>,
    /// The `sub` of a valid `id_token_hint` issued by Tessera.
    hint_subject: Option<String>,
}

fn csrf_cookie_name(config: &Config) -> &'static str {
    if secure_cookies(config) {
        "__Host-tessera_logout"
    } else {
        "tessera_logout"
    }
}

async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    PageQuery(params): PageQuery<LogoutParams>,
) -> Response {
    logout_request(state, headers, params).await
}

/// Handles a logout request from a relying party, by GET or by POST (RP-
/// Initiated Logout 1.0 section 2): ends the session at once for a valid
/// `id_token_hint` of the signed-in user, else asks the user to confirm.
async fn logout_request(state: AppState, headers: HeaderMap, params: LogoutParams) -> Response {
    let checked = check(&state, &params).await;
    let session = match live_session(&state, &headers).await {
        Ok(session) => session,
        Err(error) => return internal_error(&state, &error),
    };
    let hint_matches = match (&checked.hint_subject, &session) {
        (Some(subject), Some((_, user))) => *subject == user.id.to_string(),
        (Some(_), None) => true,
        (None, _) => false,
    };
    if hint_matches {
        return finish(&state, &headers, &checked, params.state.as_deref()).await;
    }

    let csrf = random_token();
    let base_path = issuer_path(&state.config);
    let page = ConfirmPage {
        base_path: &base_path,
        csrf: &csrf,
        client_id: checked
            .client
            .as_ref()
            .map(|client| client.client_id.as_str()),
        post_logout_redirect_uri: checked.redirect.as_deref(),
        state: params
            .state
            .as_deref()
            .filter(|value| value.len() <= MAX_PARAM_BYTES),
    };
    let mut response = match page.render() {
        Ok(html) => (StatusCode::OK, Html(html)).into_response(),
        Err(error) => return internal_error(&state, &error),
    };
    let cookie = cookie_header(
        &state.config,
        csrf_cookie_name(&state.config),
        &csrf,
        "Strict",
        600,
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(SET_COOKIE, value);
    }
    response
}

async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    PageForm(params): PageForm<LogoutParams>,
) -> Response {
    // The confirmation form always carries `csrf`; a relying party's POST
    // never does.
    if params.csrf.is_none() {
        return logout_request(state, headers, params).await;
    }
    let cookie = cookie_value(&headers, csrf_cookie_name(&state.config));
    let valid = match (params.csrf.as_deref(), cookie) {
        (Some(form), Some(cookie)) => {
            !form.is_empty()
                && subtle::ConstantTimeEq::ct_eq(form.as_bytes(), cookie.as_bytes()).into()
        }
        _ => false,
    };
    if !valid {
        return error_page(
            StatusCode::FORBIDDEN,
            &issuer_path(&state.config),
            "Form expired",
            "This form was not accepted because it expired or was sent from another page.",
        );
    }
    let params = LogoutParams {
        id_token_hint: None,
        ..params
    };
    let checked = check(&state, &params).await;
    finish(&state, &headers, &checked, params.state.as_deref()).await
}

/// Ends the session, then redirects to the checked URI or shows the
/// signed-out page.
async fn finish(
    state: &AppState,
    headers: &HeaderMap,
    checked: &Checked,
    logout_state: Option<&str>,
) -> Response {
    let cookie_name = session_cookie_name(&state.config);
    if let Some(id) = cookie_value(headers, cookie_name) {
        let digest = state.data_keys.digester.digest(id);
        let session = state.store.session(&digest).await.ok().flatten();
        match state.store.delete_session(&digest).await {
            Ok(true) => record_session_end(state, checked, session).await,
            Ok(false) => {}
            Err(error) => return internal_error(state, &error),
        }
    }
    let mut response = match &checked.redirect {
        Some(uri) => {
            let mut location = uri.clone();
            if let Some(value) = logout_state.filter(|value| value.len() <= MAX_PARAM_BYTES) {
                location.push(if uri.contains('?') { '&' } else { '?' });
                location.push_str("state=");
                location.extend(utf8_percent_encode(value, STATE_ENCODE));
            }
            match HeaderValue::from_str(&location) {
                Ok(value) => (StatusCode::FOUND, [(LOCATION, value)]).into_response(),
                Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            }
        }
        None => {
            let base_path = issuer_path(&state.config);
            match (SignedOutPage {
                base_path: &base_path,
            })
            .render()
            {
                Ok(html) => (StatusCode::OK, Html(html)).into_response(),
                Err(error) => return internal_error(state, &error),
            }
        }
    };
    let expired = cookie_header(&state.config, cookie_name, "", "Lax", 0);
    if let Ok(value) = HeaderValue::from_str(&expired) {
        response.headers_mut().append(SET_COOKIE, value);
    }
    if let Some(client) = &checked.client {
        tracing::info!(client_id = %client.client_id, "session ended by RP-initiated logout");
    }
    response
}

/// Checks the hint, the client and the redirect URI. Anything invalid is
/// dropped, so the user confirms and gets Tessera's own page.
async fn check(state: &AppState, params: &LogoutParams) -> Checked {
    let now = state.clock.now();
    let hint = params
        .id_token_hint
        .as_deref()
        .and_then(|hint| hint_claims(&state.keys, &state.config.issuer, now, hint));
    let hint_audience = hint.as_ref().and_then(hint_audience);
    let client_id = match (&hint_audience, params.client_id.as_deref()) {
        (Some(aud), Some(given)) if aud != given => None,
        (Some(aud), _) => Some(aud.clone()),
        (None, given) => given.map(str::to_owned),
    };
    let client = match client_id.filter(|id| id.len() <= 256) {
        Some(id) => state.registry.client(&id).await.ok().flatten(),
        None => None,
    };
    let redirect = match (&client, params.post_logout_redirect_uri.as_deref()) {
        (Some(client), Some(uri))
            if client
                .post_logout_redirect_uris
                .iter()
                .any(|known| known == uri) =>
        {
            Some(uri.to_owned())
        }
        _ => None,
    };
    let hint_subject = hint
        .filter(|_| hint_audience.is_some() && client.is_some())
        .and_then(|claims| claims["sub"].as_str().map(str::to_owned));
    Checked {
        client,
        redirect,
        hint_subject,
    }
}

/// Returns the claims of `hint` when a key in `keys` signed it at `now`
/// with `iss` equal to `issuer`. Expiry is not checked: an expired ID token
/// still names its user.
pub fn hint_claims(
    keys: &KeyRing,
    issuer: &str,
    now: DateTime<Utc>,
    hint: &str,
) -> Option<serde_json::Value> {
    if hint.len() > 16 * 1024 {
        return None;
    }
    let verified = keys.verify(hint, now).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&verified.payload).ok()?;
    (claims["iss"] == issuer).then_some(claims)
}

/// Returns the one audience of a hint's claims: `aud` as a string or a
/// one-element array.
pub fn hint_audience(claims: &serde_json::Value) -> Option<String> {
    match &claims["aud"] {
        serde_json::Value::String(aud) => Some(aud.clone()),
        serde_json::Value::Array(auds) if auds.len() == 1 => auds[0].as_str().map(str::to_owned),
        _ => None,
    }
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

fn internal_error(state: &AppState, error: &(dyn std::error::Error + 'static)) -> Response {
    tracing::error!(error = ?error, "logout failed");
    error_page(
        crate::http::failure_status(error),
        &issuer_path(&state.config),
        "Something went wrong",
        "Tessera could not complete this request. Please try again in a moment.",
    )
}

/// Records the end of a session in the audit log.
async fn record_session_end(state: &AppState, checked: &Checked, session: Option<SessionRecord>) {
    let subject = session.map(|session| session.user_id.to_string());
    let event = AuditEvent {
        actor: subject.as_deref().map(crate::audit::user_actor),
        subject,
        client_id: checked
            .client
            .as_ref()
            .map(|client| client.client_id.clone()),
        ..AuditEvent::new(crate::audit::kind::SESSION_ENDED, state.clock.now())
    };
    crate::audit::record(state.store.as_ref(), &event).await;
}
