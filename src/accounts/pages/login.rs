//! `GET /login` shows the form; `POST /login` checks it.

use askama::Template;
use axum::extract::State;
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use super::{
    cookie, csrf_valid, finish, form_expired, internal_error, issue_csrf, load_transaction, render,
    see_other, unknown_transaction, with_cookie,
};
use crate::accounts::consent::scopes_to_ask;
use crate::accounts::login::{authenticate, LoginAttempt, LoginResult};
use crate::accounts::login_transactions::issuer_path;
use crate::accounts::sessions::{cookie_header, session_cookie_name, start_session};
use crate::http::client_ip::ClientIp;
use crate::http::error_page;
use crate::http::page_extract::{PageForm, PageQuery};
use crate::http::rate_limit::RateLimited;
use crate::server::AppState;
use crate::store::{LoginOutcome, LoginTransactionRecord, SessionRecord};

/// The one message for every failed login, so that it reveals nothing
/// about the account.
pub const GENERIC_FAILURE: &str = "Invalid username or password.";

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    base_path: &'a str,
    client_name: &'a str,
    tx: &'a str,
    csrf: &'a str,
    username: &'a str,
    message: Option<&'a str>,
}

#[derive(Deserialize)]
pub struct TxQuery {
    pub tx: Option<String>,
}

#[derive(Deserialize)]
pub struct LoginForm {
    tx: Option<String>,
    csrf: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

pub async fn show(State(state): State<AppState>, PageQuery(query): PageQuery<TxQuery>) -> Response {
    let (id, transaction) = match load_transaction(&state, query.tx.as_deref()).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    login_page(&state, &id, &transaction, StatusCode::OK, None).await
}

pub async fn submit(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    PageForm(form): PageForm<LoginForm>,
) -> Response {
    if let Err(limited) = state.rate_limits.check_login(ip) {
        return too_many_attempts(&state, limited);
    }
    let (id, transaction) = match load_transaction(&state, form.tx.as_deref()).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    if !csrf_valid(&state, &headers, &transaction, form.csrf.as_deref()) {
        return form_expired(&state);
    }

    let attempt = LoginAttempt {
        username: form.username.as_deref(),
        password: form.password.as_deref(),
        ip,
        client_id: &transaction.client_id,
        request_id: headers
            .get("x-request-id")
            .and_then(|value| value.to_str().ok()),
    };
    let result = authenticate(
        &state.accounts,
        state.store.as_ref(),
        &state.config,
        state.clock.as_ref(),
        attempt,
    )
    .await;
    let user = match result {
        Ok(LoginResult::Success(user)) => user,
        Ok(LoginResult::Failed) => {
            return failure_page(&state, &id, &transaction, StatusCode::OK, None).await
        }
        Ok(LoginResult::Invalid) => {
            return failure_page(&state, &id, &transaction, StatusCode::BAD_REQUEST, None).await
        }
        Ok(LoginResult::AddressBlocked { retry_after }) => {
            let seconds = retry_after.as_secs().max(1);
            let status = StatusCode::TOO_MANY_REQUESTS;
            return failure_page(&state, &id, &transaction, status, Some(seconds)).await;
        }
        Ok(LoginResult::Busy) => {
            let status = StatusCode::SERVICE_UNAVAILABLE;
            return failure_page(&state, &id, &transaction, status, Some(1)).await;
        }
        Err(error) => return internal_error(&state, &error),
    };

    let config = &state.config;
    let cookie_name = session_cookie_name(config);
    let previous = cookie(&headers, cookie_name);
    let now = state.clock.now();
    let digester = &state.data_keys.digester;
    let started = start_session(
        state.store.as_ref(),
        digester,
        config,
        user.id,
        previous,
        now,
    );
    let (session_id, session) = match started.await {
        Ok(started) => started,
        Err(error) => return internal_error(&state, &error),
    };
    let max_age = config
        .login
        .session_absolute_timeout
        .as_duration()
        .as_secs();
    let session_cookie = cookie_header(
        config,
        cookie_name,
        &session_id,
        "Lax",
        i64::try_from(max_age).unwrap_or(i64::MAX),
    );
    let next = continue_after_login(&state, &id, &transaction, &session).await;
    with_cookie(next, &session_cookie)
}

/// After login: finish at once for a first-party client or when every
/// requested scope was approved before and `prompt=consent` was not sent,
/// else ask for consent.
pub async fn continue_after_login(
    state: &AppState,
    id: &str,
    transaction: &LoginTransactionRecord,
    session: &SessionRecord,
) -> Response {
    let approved = if transaction.first_party {
        Vec::new()
    } else {
        let store = state.store.as_ref();
        match store
            .consented_scopes(session.user_id, &transaction.client_id)
            .await
        {
            Ok(scopes) => scopes,
            Err(error) => return internal_error(state, &error),
        }
    };
    let to_ask = scopes_to_ask(&transaction.scopes, &approved, transaction.prompt_consent);
    if transaction.first_party || to_ask.is_empty() {
        let outcome = LoginOutcome::Approved {
            user_id: session.user_id,
            auth_time: session.auth_time,
            amr: session.amr.clone(),
            granted_scopes: transaction.scopes.clone(),
        };
        return finish(state, transaction, outcome).await;
    }
    // `id` matched a stored transaction, so it is an issued token made of
    // URL-safe characters only.
    see_other(&format!("{}/consent?tx={id}", issuer_path(&state.config)))
}

/// Renders the 429 page for a login over `rate_limits.login`. It is sent
/// before the transaction is loaded.
fn too_many_attempts(state: &AppState, limited: RateLimited) -> Response {
    let mut response = error_page(
        StatusCode::TOO_MANY_REQUESTS,
        &issuer_path(&state.config),
        "Too many sign-in attempts",
        "Too many sign-in attempts came from your network. Wait a moment, then go back and try again.",
    );
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(limited.retry_after));
    response
}

async fn failure_page(
    state: &AppState,
    id: &str,
    transaction: &LoginTransactionRecord,
    status: StatusCode,
    retry_after: Option<u64>,
) -> Response {
    let mut response = login_page(state, id, transaction, status, Some(GENERIC_FAILURE)).await;
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

async fn login_page(
    state: &AppState,
    id: &str,
    transaction: &LoginTransactionRecord,
    status: StatusCode,
    message: Option<&str>,
) -> Response {
    let (csrf, csrf_cookie) = match issue_csrf(state, transaction).await {
        Ok(Some(issued)) => issued,
        Ok(None) => return unknown_transaction(state),
        Err(error) => return internal_error(state, &error),
    };
    let base_path = issuer_path(&state.config);
    let page = LoginPage {
        base_path: &base_path,
        client_name: &transaction.client_name,
        tx: id,
        csrf: &csrf,
        // The request's `login_hint` prefills the field; the template
        // escapes it.
        username: transaction.login_hint.as_deref().unwrap_or_default(),
        message,
    };
    with_cookie(render(state, status, &page), &csrf_cookie)
}
