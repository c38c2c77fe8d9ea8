//! `GET` and `POST /userinfo` (OIDC Core section 5.3) with a Bearer access
//! token in the `Authorization` header (RFC 6750 section 2.1) or, in a
//! `POST`, as `access_token` in a form body (section 2.2).
//!
//! Only tokens addressed to Tessera itself are accepted: the JWE must be
//! encrypted to one of Tessera's published encryption keys, pass the
//! header allow-list, carry a JWS signed by a published key with
//! `typ: at+jwt`, `iss` and `aud` equal to the issuer, and be recorded and
//! not revoked. Errors follow RFC 6750 section 3. A browser app may read
//! the response when the token's client allows its origin (CORS).

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::http::cors::{self, CorsClient};
use crate::http::error::no_store;
use crate::http::form::{is_form_content_type, OAuthForm, MAX_FORM_BYTES};
use crate::keys::KeyRing;
use crate::server::AppState;
use crate::tokens::access::{record_key, ACCESS_TOKEN_TYPE};
use crate::tokens::id_token::UserClaims;
use crate::tokens::jwe::decrypt_with;

pub fn router(state: &AppState) -> Router<AppState> {
    let route = get(userinfo).post(userinfo);
    Router::new().route(
        "/userinfo",
        cors::for_clients(route, state, &["GET", "POST"]),
    )
}

/// An RFC 6750 error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BearerError {
    /// No credentials: a bare challenge (section 3.1).
    Missing,
    InvalidRequest,
    /// A form body over [`MAX_FORM_BYTES`] with no token in the header: 413.
    BodyTooLarge,
    InvalidToken,
    InsufficientScope,
    /// A store failure: 503 while the database is unavailable, else 500.
    /// It says nothing about the token, so it carries no challenge.
    StoreFailed {
        unavailable: bool,
    },
}

impl IntoResponse for BearerError {
    fn into_response(self) -> Response {
        let (status, challenge) = match self {
            BearerError::StoreFailed { unavailable } => {
                let status = if unavailable {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::INTERNAL_SERVER_ERROR
                };
                let mut response = status.into_response();
                no_store(response.headers_mut());
                return response;
            }
            BearerError::Missing => (StatusCode::UNAUTHORIZED, "Bearer realm=\"tessera\""),
            BearerError::InvalidRequest => (
                StatusCode::BAD_REQUEST,
                "Bearer realm=\"tessera\", error=\"invalid_request\"",
            ),
            BearerError::BodyTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "Bearer realm=\"tessera\", error=\"invalid_request\", \
                 error_description=\"the request body is larger than 64 KiB\"",
            ),
            BearerError::InvalidToken => (
                StatusCode::UNAUTHORIZED,
                "Bearer realm=\"tessera\", error=\"invalid_token\", \
                 error_description=\"the access token is invalid, expired or revoked\"",
            ),
            BearerError::InsufficientScope => (
                StatusCode::FORBIDDEN,
                "Bearer realm=\"tessera\", error=\"insufficient_scope\", scope=\"openid\"",
            ),
        };
        let mut response = status.into_response();
        response
            .headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        no_store(response.headers_mut());
        response
    }
}

#[derive(Serialize)]
struct UserInfo {
    sub: String,
    #[serde(flatten)]
    claims: UserClaims,
}

/// The claims of the inner token that userinfo checks.
#[derive(Deserialize)]
pub(crate) struct AccessClaims {
    iss: String,
    sub: String,
    aud: serde_json::Value,
    exp: i64,
    scope: String,
    client_id: String,
}

async fn userinfo(State(state): State<AppState>, cors: CorsClient, request: Request) -> Response {
    let (headers, form) = presented_form(request).await;
    let result = match presented_token(&headers, &form) {
        Ok(token) => claims_for(&state, &cors, token).await,
        Err(error) => Err(error),
    };
    match result {
        Ok(info) => {
            let mut response = axum::Json(info).into_response();
            no_store(response.headers_mut());
            response
        }
        Err(error) => error.into_response(),
    }
}

async fn claims_for(
    state: &AppState,
    cors: &CorsClient,
    token: &str,
) -> Result<UserInfo, BearerError> {
    let access = verify_own_token(state, token).await?;
    name_client(state, cors, &access.client_id).await;
    let scopes: Vec<&str> = access.scope.split(' ').collect();
    if !scopes.contains(&"openid") {
        return Err(BearerError::InsufficientScope);
    }
    let user_id = Uuid::parse_str(&access.sub).map_err(|_| BearerError::InvalidToken)?;
    let user = state
        .store
        .user_by_id(user_id)
        .await
        .map_err(|error| {
            tracing::error!(error = ?error, "userinfo user lookup failed");
            BearerError::StoreFailed {
                unavailable: error.is_unavailable(),
            }
        })?
        .filter(|user| !user.disabled)
        .ok_or(BearerError::InvalidToken)?;
    Ok(UserInfo {
        sub: access.sub.clone(),
        claims: UserClaims::for_scopes(&user, scopes),
    })
}

/// Names the client the token was issued to, whose allowed origins decide
/// whether a browser app may read the response. Only a request with an
/// `Origin` header pays for the lookup.
async fn name_client(state: &AppState, cors: &CorsClient, client_id: &str) {
    if !cors.is_active() {
        return;
    }
    match state.registry.client(client_id).await {
        Ok(Some(client)) => cors.set_client(&client),
        Ok(None) => {}
        Err(error) => tracing::error!(error = ?error, "userinfo client lookup failed"),
    }
}

/// The form body of a `POST` to `/userinfo`, as far as it could be read.
enum FormBody {
    /// Not a `POST`, or a body of another type, which is not read.
    Absent,
    Parsed(OAuthForm),
    TooLarge,
    /// Broken off, repeated parameters, invalid UTF-8 or a control character.
    Malformed,
}

/// Returns the request's headers and, for a `POST` with a form body, the
/// form.
async fn presented_form(request: Request) -> (HeaderMap, FormBody) {
    let (parts, body) = request.into_parts();
    let is_form = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(is_form_content_type);
    if parts.method != Method::POST || !is_form {
        return (parts.headers, FormBody::Absent);
    }
    let form = match axum::body::to_bytes(body, MAX_FORM_BYTES).await {
        Ok(bytes) => OAuthForm::parse(&bytes).map_or(FormBody::Malformed, FormBody::Parsed),
        Err(error) if is_length_limit(&error) => FormBody::TooLarge,
        Err(_) => FormBody::Malformed,
    };
    (parts.headers, form)
}

/// Checks whether reading a body failed on its length limit.
fn is_length_limit(error: &axum::Error) -> bool {
    std::error::Error::source(error)
        .is_some_and(|source| source.is::<http_body_util::LengthLimitError>())
}

/// Picks the token from the `Authorization` header or the form's
/// `access_token`, and rejects both at once (RFC 6750 section 2). A body
/// that cannot be read counts only when the header has no token.
fn presented_token<'a>(headers: &'a HeaderMap, form: &'a FormBody) -> Result<&'a str, BearerError> {
    match (bearer_token(headers), form) {
        (Ok(_), FormBody::Parsed(form)) if form.contains("access_token") => {
            Err(BearerError::InvalidRequest)
        }
        (Err(BearerError::Missing), FormBody::Parsed(form)) => form
            .get("access_token")
            .map_or(Err(BearerError::Missing), checked_length),
        (Err(BearerError::Missing), FormBody::TooLarge) => Err(BearerError::BodyTooLarge),
        (Err(BearerError::Missing), FormBody::Malformed) => Err(BearerError::InvalidRequest),
        (header, _) => header,
    }
}

/// Reads `Authorization: Bearer TOKEN` (the scheme in any case).
pub(crate) fn bearer_token(headers: &HeaderMap) -> Result<&str, BearerError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return match headers.get(AUTHORIZATION) {
            None => Err(BearerError::Missing),
            Some(_) => Err(BearerError::InvalidRequest),
        };
    };
    let value = value.to_str().map_err(|_| BearerError::InvalidRequest)?;
    let (scheme, token) = value.split_once(' ').ok_or(BearerError::Missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(BearerError::Missing);
    }
    checked_length(token.trim())
}

/// Rejects an empty token and one over 16 KiB.
fn checked_length(token: &str) -> Result<&str, BearerError> {
    if token.is_empty() || token.len() > 16 * 1024 {
        return Err(BearerError::InvalidRequest);
    }
    Ok(token)
}

async fn verify_own_token(state: &AppState, token: &str) -> Result<AccessClaims, BearerError> {
    let now = state.clock.now();
    let record = state
        .store
        .find_access_token(&record_key(token, &state.data_keys.digester))
        .await
        .map_err(|error| {
            tracing::error!(error = ?error, "userinfo token lookup failed");
            BearerError::StoreFailed {
                unavailable: error.is_unavailable(),
            }
        })?
        .filter(|record| record.is_active(now))
        .ok_or(BearerError::InvalidToken)?;
    let issuer = state.config.issuer.as_str();
    let claims = open_own_token(&state.keys, issuer, now, token)?;
    if record.audience != issuer {
        return Err(BearerError::InvalidToken);
    }
    Ok(claims)
}

/// Decrypts `token` with Tessera's encryption key its `kid` names, verifies
/// the inner `at+jwt` and checks that `iss` and `aud` are `issuer` and that
/// it has not expired at `now`.
pub(crate) fn open_own_token(
    keys: &KeyRing,
    issuer: &str,
    now: DateTime<Utc>,
    token: &str,
) -> Result<AccessClaims, BearerError> {
    let kid = jwe_kid(token).ok_or(BearerError::InvalidToken)?;
    let decrypter = keys.decrypter(&kid, now).ok_or(BearerError::InvalidToken)?;
    let inner = decrypt_with(token, decrypter.as_ref()).map_err(|_| BearerError::InvalidToken)?;
    let verified = keys
        .verify(&inner, now)
        .map_err(|_| BearerError::InvalidToken)?;
    if verified.header.token_type() != Some(ACCESS_TOKEN_TYPE) {
        return Err(BearerError::InvalidToken);
    }
    let claims: AccessClaims =
        serde_json::from_slice(&verified.payload).map_err(|_| BearerError::InvalidToken)?;
    if claims.iss != issuer || claims.aud.as_str() != Some(issuer) || claims.exp <= now.timestamp()
    {
        return Err(BearerError::InvalidToken);
    }
    Ok(claims)
}

/// Reads the `kid` of a JWE compact token's protected header.
fn jwe_kid(token: &str) -> Option<String> {
    let header = token.split('.').next()?;
    let bytes = URL_SAFE_NO_PAD.decode(header).ok()?;
    let header: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    header.get("kid")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn bearer_header_forms() {
        assert_eq!(bearer_token(&headers(&["Bearer abc"])), Ok("abc"));
        assert_eq!(bearer_token(&headers(&["bearer abc"])), Ok("abc"));
        assert_eq!(bearer_token(&headers(&[])), Err(BearerError::Missing));
        assert_eq!(
            bearer_token(&headers(&["Basic abc"])),
            Err(BearerError::Missing)
        );
        assert_eq!(
            bearer_token(&headers(&["Bearer a", "Bearer b"])),
            Err(BearerError::InvalidRequest)
        );
    }

    #[test]
    fn token_from_header_or_form() {
        let parsed = |body: &str| FormBody::Parsed(OAuthForm::parse(body.as_bytes()).unwrap());
        let form = parsed("access_token=in-body");
        let other = parsed("scope=openid");
        let none = headers(&[]);
        let bearer = headers(&["Bearer in-header"]);
        let basic = headers(&["Basic abc"]);
        assert_eq!(presented_token(&none, &form), Ok("in-body"));
        assert_eq!(presented_token(&basic, &form), Ok("in-body"));
        assert_eq!(presented_token(&bearer, &FormBody::Absent), Ok("in-header"));
        assert_eq!(presented_token(&bearer, &other), Ok("in-header"));
        assert_eq!(
            presented_token(&bearer, &form),
            Err(BearerError::InvalidRequest)
        );
        assert_eq!(presented_token(&none, &other), Err(BearerError::Missing));
        assert_eq!(
            presented_token(&none, &FormBody::Absent),
            Err(BearerError::Missing)
        );
        let long = parsed(&format!("access_token={}", "a".repeat(16 * 1024 + 1)));
        assert_eq!(
            presented_token(&none, &long),
            Err(BearerError::InvalidRequest)
        );
    }

    #[test]
    fn unreadable_body_matters_only_without_header_token() {
        let none = headers(&[]);
        let bearer = headers(&["Bearer in-header"]);
        assert_eq!(
            presented_token(&none, &FormBody::TooLarge),
            Err(BearerError::BodyTooLarge)
        );
        assert_eq!(
            presented_token(&none, &FormBody::Malformed),
            Err(BearerError::InvalidRequest)
        );
        assert_eq!(
            presented_token(&bearer, &FormBody::TooLarge),
            Ok("in-header")
        );
        assert_eq!(
            presented_token(&bearer, &FormBody::Malformed),
            Ok("in-header")
        );
    }

    #[test]
    fn errors_carry_rfc6750_challenges() {
        let response = BearerError::InvalidToken.into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let challenge = response.headers()[WWW_AUTHENTICATE].to_str().unwrap();
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
        let response = BearerError::InsufficientScope.into_response();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }
}
