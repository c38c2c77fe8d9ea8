//! The calendar API: `GET /calendar` needs the scope `calendar.read`,
//! `POST /calendar` needs `calendar.write`. Requests without a valid
//! access token get the RFC 6750 section 3 error responses.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequestParts, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::verify::{AccessTokenClaims, TokenError, Verifier};

pub const READ_SCOPE: &str = "calendar.read";
pub const WRITE_SCOPE: &str = "calendar.write";
const MAX_TITLE_CHARS: usize = 200;

#[derive(Clone)]
pub struct ApiState {
    verifier: Arc<Verifier>,
    events: Arc<Mutex<Vec<Event>>>,
}

/// A calendar entry, kept in memory.
#[derive(Clone, Serialize)]
pub struct Event {
    pub title: String,
    pub created_by: String,
}

#[derive(Deserialize)]
pub struct NewEvent {
    pub title: String,
}

pub fn router(verifier: Arc<Verifier>) -> Router {
    let state = ApiState {
        verifier,
        events: Arc::default(),
    };
    Router::new()
        .route("/calendar", get(list_events).post(add_event))
        .with_state(state)
}

async fn list_events(
    State(state): State<ApiState>,
    token: AccessToken,
) -> Result<Json<serde_json::Value>, ApiError> {
    token.require_scope(READ_SCOPE)?;
    let events = lock(&state.events).clone();
    Ok(Json(json!({
        "subject": token.0.sub,
        "client_id": token.0.client_id,
        "events": events,
    })))
}

async fn add_event(
    State(state): State<ApiState>,
    token: AccessToken,
    body: Result<Json<NewEvent>, JsonRejection>,
) -> Result<(StatusCode, Json<Event>), ApiError> {
    // The scope is checked before the body, so a client without it learns
    // that first, whatever it sent.
    token.require_scope(WRITE_SCOPE)?;
    let Json(new) = body.map_err(ApiError::InvalidBody)?;
    let title = new.title.trim();
    if title.is_empty() || title.chars().count() > MAX_TITLE_CHARS {
        return Err(ApiError::InvalidEvent);
    }
    let event = Event {
        title: title.to_owned(),
        created_by: token.0.sub,
    };
    lock(&state.events).push(event.clone());
    Ok((StatusCode::CREATED, Json(event)))
}

/// Locks the event list; a panic in another request leaves it usable.
fn lock(events: &Mutex<Vec<Event>>) -> std::sync::MutexGuard<'_, Vec<Event>> {
    events
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The verified claims of the request's bearer token.
pub struct AccessToken(pub AccessTokenClaims);

impl AccessToken {
    fn require_scope(&self, scope: &'static str) -> Result<(), ApiError> {
        if self.0.has_scope(scope) {
            Ok(())
        } else {
            Err(ApiError::InsufficientScope(scope))
        }
    }
}

impl FromRequestParts<ApiState> for AccessToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let token = bearer_token(&parts.headers)?;
        match state.verifier.verify(token, SystemTime::now()).await {
            Ok(claims) => Ok(Self(claims)),
            Err(error) => {
                // The reason only: the token itself is a credential.
                tracing::info!(reason = %error, "access token rejected");
                Err(ApiError::InvalidToken(error))
            }
        }
    }
}

/// Reads the token of an `Authorization: Bearer` header (RFC 6750 section
/// 2.1). A request with no such header presented no token.
fn bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(if headers.contains_key(AUTHORIZATION) {
            ApiError::InvalidRequest("send one Authorization header")
        } else {
            ApiError::MissingToken
        });
    };
    let value = value.to_str().map_err(|_| ApiError::MissingToken)?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("Bearer") {
        return Err(ApiError::MissingToken);
    }
    let token = token.trim_start_matches(' ');
    if !is_b64token(token) {
        return Err(ApiError::InvalidRequest("the bearer token is malformed"));
    }
    Ok(token)
}

/// The `b64token` syntax of RFC 6750 section 2.1.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-._~+/".contains(&byte))
}

/// A rejected request, answered as RFC 6750 section 3 says.
#[derive(Debug)]
pub enum ApiError {
    MissingToken,
    InvalidRequest(&'static str),
    InvalidToken(TokenError),
    InsufficientScope(&'static str),
    InvalidBody(JsonRejection),
    InvalidEvent,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, challenge, body) = match self {
            Self::MissingToken => (
                StatusCode::UNAUTHORIZED,
                "Bearer".to_owned(),
                json!({ "error_description": "an access token is required" }),
            ),
            Self::InvalidRequest(description) => (
                StatusCode::BAD_REQUEST,
                format!(r#"Bearer error="invalid_request", error_description="{description}""#),
                json!({ "error": "invalid_request", "error_description": description }),
            ),
            Self::InvalidToken(TokenError::KeysUnavailable) => {
                let body = json!({
                    "error": "temporarily_unavailable",
                    "error_description": TokenError::KeysUnavailable.to_string(),
                });
                return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
            }
            Self::InvalidToken(error) => (
                StatusCode::UNAUTHORIZED,
                format!(r#"Bearer error="invalid_token", error_description="{error}""#),
                json!({ "error": "invalid_token", "error_description": error.to_string() }),
            ),
            Self::InsufficientScope(scope) => (
                StatusCode::FORBIDDEN,
                format!(r#"Bearer error="insufficient_scope", scope="{scope}""#),
                json!({ "error": "insufficient_scope", "scope": scope }),
            ),
            Self::InvalidBody(rejection) => return rejection.into_response(),
            Self::InvalidEvent => {
                let description = format!("`title` must have 1 to {MAX_TITLE_CHARS} characters");
                let body = json!({ "error": "invalid_event", "error_description": description });
                return (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response();
            }
        };
        (status, [(WWW_AUTHENTICATE, challenge)], Json(body)).into_response()
    }
}
