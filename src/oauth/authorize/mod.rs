//! `GET` and `POST /authorize` (RFC 6749 section 4.1, OIDC Core section
//! 3.1.2) and `/authorize/resume`, where the browser comes back from the
//! login and consent pages.
//!
//! A request that needs the user is stored as a pending authorization. The
//! login transaction's return path names it by a random id, and the resume
//! step takes the transaction's outcome once and issues the code.
//!
//! Consent is stored per user and client, and the consent page lists only
//! the scopes the user has not approved yet, except under `prompt=consent`,
//! when it lists every requested scope. First-party clients never show it.
//! `login_hint` prefills the login form's username.

pub mod hint;
pub mod redirect;
pub mod request;
pub mod response;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::header::LOCATION;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use self::request::{
    check_request, client_id, response_target, AuthorizationRequest, AuthorizeError, PageError,
    Params,
};
use crate::accounts::consent::unapproved_scopes;
use crate::accounts::live_session;
use crate::accounts::login_transactions::{
    create_login_transaction, issuer_path, NewLoginTransaction,
};
use crate::config::Config;
use crate::crypto::random_token;
use crate::http::page_extract::{unreadable, PageQuery};
use crate::http::{error_page, with_security_headers};
use crate::oauth::grants::code::{issue_code, Approval};
use crate::oauth::grants::issue::allowed_resource;
use crate::server::AppState;
use crate::store::{Client, LoginOutcome, PendingAuthorization, SessionRecord};

/// Largest accepted `POST /authorize` body.
const MAX_FORM_BYTES: usize = 64 * 1024;

pub fn router(config: &Config) -> Router<AppState> {
    let routes = Router::new()
        .route("/authorize", get(authorize_get).post(authorize_post))
        .route("/authorize/resume", get(resume))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES));
    with_security_headers(routes, config.issuer.starts_with("https://"))
}

async fn authorize_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let params = Params::parse(query.unwrap_or_default().as_bytes());
    authorize(&state, &headers, &params).await
}

async fn authorize_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match body {
        Ok(body) => authorize(&state, &headers, &Params::parse(&body)).await,
        Err(rejection) => unreadable(&state, rejection.status()),
    }
}

async fn authorize(state: &AppState, headers: &HeaderMap, params: &Params) -> Response {
    let issuer = state.config.issuer.as_str();
    let id = match client_id(params) {
        Ok(id) => id,
        Err(error) => return page_error(state, error),
    };
    let client = match state.registry.client(id).await {
        Ok(Some(client)) => client,
        Ok(None) => return page_error(state, PageError::ClientId),
        Err(error) => return internal_error(state, &error),
    };
    let target = match response_target(params, &client) {
        Ok(target) => target,
        Err(error) => return page_error(state, error),
    };
    let request = match check_request(params, &client, target) {
        Ok(request) => request,
        Err(error) => {
            tracing::info!(client_id = %client.client_id, error = error.code, "authorization request rejected");
            return response::error(&request_target(params, &client), issuer, error);
        }
    };
    if let Err(error) = check_audience(state, &client, &request).await {
        return response::error(&request.target, issuer, error);
    }
    let hinted = match hint::hint_subject(state, &client, request.id_token_hint.as_deref()) {
        Ok(subject) => subject,
        Err(error) => return response::error(&request.target, issuer, error),
    };

    let session = match live_session(state, headers).await {
        Ok(session) => session.map(|(session, _user)| session),
        Err(error) => return internal_error(state, &error),
    };
    let now = state.clock.now();
    let login_needed = match &session {
        None => true,
        Some(session) => {
            // A session of another user than the hint names does not count.
            let other_user = hinted
                .as_ref()
                .is_some_and(|subject| *subject != session.user_id.to_string());
            request.prompt.login || too_old(session, request.max_age, now) || other_user
        }
    };
    let consent_needed = match &session {
        _ if client.first_party => false,
        Some(_) if request.prompt.consent => true,
        Some(session) => {
            match state
                .store
                .consented_scopes(session.user_id, &client.client_id)
                .await
            {
                Ok(approved) => !unapproved_scopes(&request.scopes, &approved).is_empty(),
                Err(error) => return internal_error(state, &error),
            }
        }
        None => true,
    };

    if let Some(session) = session
        .as_ref()
        .filter(|_| !login_needed && !consent_needed)
    {
        return approve(state, &request, approval_from_session(session)).await;
    }
    if request.prompt.none {
        // OIDC Core section 3.1.2.6: no UI may be shown.
        let error = if login_needed {
            AuthorizeError::new("login_required", "the user must log in")
        } else {
            AuthorizeError::new("consent_required", "the user must approve the request")
        };
        return response::error(&request.target, issuer, error);
    }
    let page = if login_needed { "login" } else { "consent" };
    match start_interaction(state, &client, &request).await {
        Ok(tx) => redirect_to(&format!("{}/{page}?tx={tx}", issuer_path(&state.config))),
        Err(response) => response,
    }
}

/// Returns the response target of a request whose client and redirect
/// URI are valid.
fn request_target(params: &Params, client: &Client) -> request::ResponseTarget {
    // `check_request` runs only after `response_target` succeeded.
    response_target(params, client).unwrap_or_else(|_| request::ResponseTarget {
        redirect_uri: String::new(),
        mode: request::ResponseMode::Query,
        state: None,
    })
}

/// RFC 8707 and DESIGN "Policies": a named resource must be allowed for the
/// client, and a request without one needs an audience: Tessera itself for
/// `openid`, else the client's default resource.
async fn check_audience(
    state: &AppState,
    client: &Client,
    request: &AuthorizationRequest,
) -> Result<(), AuthorizeError> {
    let invalid_target = AuthorizeError::new(
        "invalid_target",
        "the requested resource is unknown or not allowed for this client",
    );
    match &request.resource {
        Some(resource) => allowed_resource(state, client, resource)
            .await
            .map(|_| ())
            .map_err(|error| {
                if error.status.is_server_error() {
                    AuthorizeError::new("server_error", "the server could not complete the request")
                } else {
                    invalid_target
                }
            }),
        None if request.is_openid() || client.default_resource.is_some() => Ok(()),
        None => Err(AuthorizeError::new(
            "invalid_target",
            "the request names no resource and asks no openid scope, \
             and the client has no default resource",
        )),
    }
}

/// Returns whether the session's login is older than `max_age` allows.
/// `max_age=0` always requires a new login (OIDC Core section 3.1.2.1). A
/// `max_age` beyond chrono's range (about 292 million years) never expires.
pub(crate) fn too_old(
    session: &SessionRecord,
    max_age: Option<i64>,
    now: chrono::DateTime<chrono::Utc>,
) -> bool {
    match max_age {
        None => false,
        Some(0) => true,
        Some(seconds) => chrono::Duration::try_seconds(seconds)
            .is_some_and(|max_age| now - session.auth_time > max_age),
    }
}

/// Derives the OIDC `sid` of a session from its stored digest, so it is
/// stable for the session and reveals nothing about the cookie.
pub fn session_sid(session: &SessionRecord) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(
        format!("sid:{}", session.id_digest).as_bytes(),
    ))
}

fn approval_from_session(session: &SessionRecord) -> Approval {
    Approval {
        user_id: session.user_id,
        auth_time: session.auth_time,
        amr: session.amr.clone(),
        sid: session_sid(session),
    }
}

async fn approve(state: &AppState, request: &AuthorizationRequest, approval: Approval) -> Response {
    match issue_code(state, request, approval).await {
        Ok(code) => response::success(&request.target, &state.config.issuer, &code),
        Err(error) => internal_error(state, &error),
    }
}

/// Stores the request and opens a login transaction; returns its id.
async fn start_interaction(
    state: &AppState,
    client: &Client,
    request: &AuthorizationRequest,
) -> Result<String, Response> {
    let now = state.clock.now();
    let digester = &state.data_keys.digester;
    let pending_id = random_token();
    let new = NewLoginTransaction {
        client_id: client.client_id.clone(),
        client_name: if client.name.is_empty() {
            client.client_id.clone()
        } else {
            client.name.clone()
        },
        first_party: client.first_party,
        scopes: request.scopes.clone(),
        login_hint: request.login_hint.clone(),
        prompt_consent: request.prompt.consent,
        return_path: format!("/authorize/resume?request={pending_id}"),
    };
    let tx = create_login_transaction(state.store.as_ref(), digester, &state.config, new, now)
        .await
        .map_err(|error| internal_error(state, &error))?;
    let serialized =
        serde_json::to_string(request).map_err(|error| internal_error(state, &error))?;
    let pending = PendingAuthorization {
        id_digest: digester.digest(&pending_id),
        tx_digest: digester.digest(&tx),
        client_id: client.client_id.clone(),
        request: serialized,
        expires_at: now + state.config.login.transaction_ttl.as_chrono(),
    };
    state
        .store
        .insert_pending_authorization(&pending)
        .await
        .map_err(|error| internal_error(state, &error))?;
    Ok(tx)
}

#[derive(Deserialize)]
struct ResumeQuery {
    request: Option<String>,
}

/// Takes the outcome of the login transaction once and redirects to the
/// client with a code or an error.
async fn resume(
    State(state): State<AppState>,
    headers: HeaderMap,
    PageQuery(query): PageQuery<ResumeQuery>,
) -> Response {
    let now = state.clock.now();
    let Some(id) = query.request.filter(|id| !id.is_empty() && id.len() <= 64) else {
        return expired(&state);
    };
    let digest = state.data_keys.digester.digest(&id);
    let pending = match state.store.pending_authorization(&digest, now).await {
        Ok(Some(pending)) => pending,
        Ok(None) => return expired(&state),
        Err(error) => return internal_error(&state, &error),
    };
    // The outcome belongs to the browser that logged in: only a session of
    // the approving user may take it, so a leaked resume link is worth
    // nothing elsewhere and leaves the flow intact for its owner.
    let session_user = match live_session(&state, &headers).await {
        Ok(session) => session.map(|(session, _)| session.user_id),
        Err(error) => return internal_error(&state, &error),
    };
    let approver = match state.store.login_transaction(&pending.tx_digest, now).await {
        Ok(found) => found.and_then(|transaction| approved_by(&transaction.outcome)),
        Err(error) => return internal_error(&state, &error),
    };
    if approver.is_some() && approver != session_user {
        tracing::info!(client_id = %pending.client_id, "resume without the approving session");
        return expired(&state);
    }
    let transaction = match state
        .store
        .take_login_transaction(&pending.tx_digest, now)
        .await
    {
        Ok(Some(transaction)) => transaction,
        Ok(None) => return expired(&state),
        Err(error) => return internal_error(&state, &error),
    };
    if let Err(error) = state.store.delete_pending_authorization(&digest).await {
        return internal_error(&state, &error);
    }
    let mut request: AuthorizationRequest = match serde_json::from_str(&pending.request) {
        Ok(request) => request,
        Err(error) => return internal_error(&state, &error),
    };
    let issuer = state.config.issuer.as_str();
    match transaction.outcome {
        Some(LoginOutcome::Approved {
            user_id,
            auth_time,
            amr,
            granted_scopes,
        }) => {
            let sid = match live_session(&state, &headers).await {
                Ok(Some((session, _))) if session.user_id == user_id => session_sid(&session),
                Ok(_) => random_token(),
                Err(error) => return internal_error(&state, &error),
            };
            request.scopes = granted_scopes;
            let approval = Approval {
                user_id,
                auth_time,
                amr,
                sid,
            };
            approve(&state, &request, approval).await
        }
        Some(LoginOutcome::Denied { .. }) => response::error(
            &request.target,
            issuer,
            AuthorizeError::new("access_denied", "the user denied the request"),
        ),
        None => expired(&state),
    }
}

/// Returns the user who approved, for an approved outcome.
fn approved_by(outcome: &Option<LoginOutcome>) -> Option<uuid::Uuid> {
    match outcome {
        Some(LoginOutcome::Approved { user_id, .. }) => Some(*user_id),
        _ => None,
    }
}

fn redirect_to(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => (StatusCode::SEE_OTHER, [(LOCATION, value)]).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

fn page_error(state: &AppState, error: PageError) -> Response {
    let message = match error {
        PageError::ClientId => {
            "The application sent a missing, repeated or unknown client_id, \
             so Tessera cannot send you back to it."
        }
        PageError::RedirectUri => {
            "The application sent a missing, repeated or unregistered redirect_uri, \
             so Tessera cannot send you back to it."
        }
    };
    error_page(
        StatusCode::BAD_REQUEST,
        &issuer_path(&state.config),
        "Invalid sign-in request",
        message,
    )
}

fn expired(state: &AppState) -> Response {
    error_page(
        StatusCode::BAD_REQUEST,
        &issuer_path(&state.config),
        "Sign-in link expired",
        "This sign-in request is unknown, finished or has expired. \
         Go back to the application and sign in again.",
    )
}

fn internal_error(state: &AppState, error: &(dyn std::error::Error + 'static)) -> Response {
    tracing::error!(error = ?error, "authorization request failed");
    error_page(
        crate::http::failure_status(error),
        &issuer_path(&state.config),
        "Something went wrong",
        "Tessera could not complete this request. Please try again in a moment.",
    )
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Duration, Utc};
    use uuid::Uuid;

    use super::*;

    fn session_signed_in_at(auth_time: DateTime<Utc>) -> SessionRecord {
        SessionRecord {
            id_digest: "d".into(),
            user_id: Uuid::nil(),
            auth_time,
            amr: vec!["pwd".into()],
            created_at: auth_time,
            last_seen_at: auth_time,
            expires_at: auth_time + Duration::hours(12),
        }
    }

    #[test]
    fn max_age_against_login_time() {
        let now = Utc::now();
        let session = session_signed_in_at(now - Duration::seconds(600));
        assert!(!too_old(&session, None, now));
        assert!(too_old(&session, Some(0), now));
        assert!(too_old(&session, Some(599), now));
        assert!(!too_old(&session, Some(600), now));
    }

    #[test]
    fn max_age_beyond_chrono_range_never_expires() {
        let now = Utc::now();
        let session = session_signed_in_at(now - Duration::days(365));
        assert!(!too_old(&session, Some(i64::MAX), now));
        assert!(!too_old(&session, Some(i64::MAX / 1000 + 1), now));
    }
}
