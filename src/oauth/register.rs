//! Dynamic client registration: `POST /register` (RFC 7591) and the client
//! configuration endpoint `/register/{client_id}` (RFC 7592: GET, PUT,
//! DELETE with the registration access token).
//!
//! `registration.policy` decides who may register: no one (`closed`, the
//! default), anyone with the built-in scopes only (`open`), or holders of
//! an initial access token (`token`). A self-registered client is never
//! first-party, so it always gets a consent page. Updates through `PUT`
//! follow the rules of the current policy (`open` rules unless `token`).
//!
//! Besides the RFC 7591 members, a request may carry `allowed_origins`, the
//! browser origins allowed to call the token endpoint and its siblings as
//! the client (CORS). Lifetime overrides, like the default resource, are
//! left to operators.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::authorizations;
use crate::clients::{self, ClientMetadata, MetadataError, Registrar, RegistrationError};
use crate::config::RegistrationPolicy;
use crate::http::client_ip::ClientIp;
use crate::http::error::OAuthError;
use crate::server::AppState;
use crate::store::{Client, StoreError};

/// Largest registration request body, in bytes.
const MAX_BODY_BYTES: usize = 64 * 1024;

pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/register", post(register))
        .route(
            "/register/{client_id}",
            get(read_registration)
                .put(update_registration)
                .delete(delete_registration),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .route_layer(middleware::from_fn_with_state(state.clone(), limit_rate))
}

/// Counts every registration request against its address
/// (`rate_limits.register`) before any other work.
async fn limit_rate(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    request: Request,
    next: Next,
) -> Response {
    match state.rate_limits.check_register(ip) {
        Ok(()) => next.run(request).await,
        Err(limited) => OAuthError::from(limited).into_response(),
    }
}

/// A registration failure, rendered as RFC 7591 section 3.2.2 JSON.
#[derive(Debug)]
pub enum RegisterError {
    Metadata(MetadataError),
    /// Registration is closed.
    Disabled,
    /// The body is larger than [`MAX_BODY_BYTES`] or could not be read.
    UnreadableBody(BytesRejection),
    /// No initial or registration access token was sent (RFC 6750).
    MissingToken,
    /// A wrong initial or registration access token (RFC 6750).
    InvalidToken,
    Internal(StoreError),
}

impl From<RegistrationError> for RegisterError {
    fn from(error: RegistrationError) -> Self {
        match error {
            RegistrationError::Metadata(error) => RegisterError::Metadata(error),
            RegistrationError::Store(error) => RegisterError::Internal(error),
        }
    }
}

impl From<StoreError> for RegisterError {
    fn from(error: StoreError) -> Self {
        RegisterError::Internal(error)
    }
}

impl IntoResponse for RegisterError {
    fn into_response(self) -> Response {
        let (status, code, description) = match self {
            RegisterError::Metadata(error) => {
                tracing::info!(
                    error = error.code.as_str(),
                    field = error.field,
                    "registration rejected"
                );
                (
                    StatusCode::BAD_REQUEST,
                    error.code.as_str(),
                    error.description,
                )
            }
            RegisterError::UnreadableBody(rejection) => {
                tracing::info!(error = ?rejection, "registration body rejected");
                let status = rejection.status();
                let description = if status == StatusCode::PAYLOAD_TOO_LARGE {
                    format!("request: the body exceeds {MAX_BODY_BYTES} bytes")
                } else {
                    "request: the body could not be read".to_owned()
                };
                (status, "invalid_client_metadata", description)
            }
            RegisterError::Disabled => (
                StatusCode::FORBIDDEN,
                "access_denied",
                "dynamic client registration is disabled on this server".to_owned(),
            ),
            RegisterError::MissingToken => (
                StatusCode::UNAUTHORIZED,
                "invalid_request",
                "an access token is required".to_owned(),
            ),
            RegisterError::InvalidToken => {
                tracing::info!("registration request with an invalid access token");
                (
                    StatusCode::UNAUTHORIZED,
                    "invalid_token",
                    "the access token is invalid or expired".to_owned(),
                )
            }
            RegisterError::Internal(error) if error.is_unavailable() => {
                tracing::error!(error = ?error, "client registration failed: database unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    "the registration cannot be completed for now; retry later".to_owned(),
                )
            }
            RegisterError::Internal(error) => {
                tracing::error!(error = ?error, "client registration failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "the registration could not be completed".to_owned(),
                )
            }
        };
        let mut response = (
            status,
            Json(json!({ "error": code, "error_description": description })),
        )
            .into_response();
        // RFC 6750 section 3.1: a request without a token gets the bare
        // challenge, with no error code.
        if status == StatusCode::UNAUTHORIZED {
            let challenge = if code == "invalid_token" {
                "Bearer realm=\"tessera\", error=\"invalid_token\""
            } else {
                "Bearer realm=\"tessera\""
            };
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        no_store(response)
    }
}

/// RFC 7591 section 3.2.1: responses carrying credentials are not cached.
fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

pub(crate) fn parse_body(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Value, RegisterError> {
    let body = body.map_err(RegisterError::UnreadableBody)?;
    let json_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"));
    if !json_type {
        return Err(RegisterError::Metadata(MetadataError::metadata(
            "request",
            "the body must be application/json",
        )));
    }
    serde_json::from_slice(&body).map_err(|err| {
        RegisterError::Metadata(MetadataError::metadata(
            "request",
            format!("the body is not valid JSON: {err}"),
        ))
    })
}

async fn register(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, RegisterError> {
    let registrar = match state.config.registration.policy {
        RegistrationPolicy::Closed => return Err(RegisterError::Disabled),
        RegistrationPolicy::Open => Registrar::OpenSelfService,
        RegistrationPolicy::Token => Registrar::TrustedSelfService,
    };
    let initial_token = match registrar {
        Registrar::TrustedSelfService => {
            Some(bearer_token(&headers).ok_or(RegisterError::MissingToken)?)
        }
        _ => None,
    };
    let metadata =
        ClientMetadata::from_json(&parse_body(&headers, body)?).map_err(RegisterError::Metadata)?;
    // Check the metadata before using up the initial access token, so a
    // rejected request costs the caller nothing.
    clients::validate(&metadata, registrar, &[]).map_err(RegisterError::Metadata)?;
    let now = state.clock.now();
    if let Some(token) = initial_token {
        let digest = state.data_keys.digester.digest(token);
        if !state
            .store
            .consume_initial_access_token(&digest, now)
            .await?
        {
            return Err(RegisterError::InvalidToken);
        }
    }

    let registered = clients::register(
        state.store.as_ref(),
        &state.data_keys.digester,
        &metadata,
        registrar,
        now,
    )
    .await?;
    state.registry.invalidate_clients();

    let mut document = client_information(&registered.client, &state.config.issuer);
    if let Some(secret) = &registered.client_secret {
        document["client_secret"] = Value::String(secret.expose().to_owned());
    }
    if let Some(token) = &registered.registration_access_token {
        document["registration_access_token"] = Value::String(token.expose().to_owned());
    }
    Ok(no_store(
        (StatusCode::CREATED, Json(document)).into_response(),
    ))
}

/// Loads the client named in the path if the request carries its
/// registration access token. An unknown client and a wrong token get the
/// same response (RFC 7592 section 2.1), so ids cannot be probed.
async fn authorized_client(
    state: &AppState,
    headers: &HeaderMap,
    client_id: &str,
) -> Result<Client, RegisterError> {
    let token = bearer_token(headers).ok_or(RegisterError::MissingToken)?;
    let client = state.store.client(client_id).await?;
    match client {
        Some(client)
            if client
                .registration_token_digest
                .as_deref()
                .is_some_and(|digest| state.data_keys.digester.verify(token, digest)) =>
        {
            Ok(client)
        }
        _ => Err(RegisterError::InvalidToken),
    }
}

async fn read_registration(
    State(state): State<AppState>,
    Path(client_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, RegisterError> {
    let client = authorized_client(&state, &headers, &client_id).await?;
    let document = client_information(&client, &state.config.issuer);
    Ok(no_store(Json(document).into_response()))
}

async fn update_registration(
    State(state): State<AppState>,
    Path(client_id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, RegisterError> {
    let client = authorized_client(&state, &headers, &client_id).await?;
    let request = parse_body(&headers, body)?;

    // RFC 7592 section 2.2: the body names the client it replaces, and a
    // client_secret, when present, must be the current one.
    if request.get("client_id").and_then(Value::as_str) != Some(client_id.as_str()) {
        return Err(RegisterError::Metadata(MetadataError::metadata(
            "client_id",
            "must be present and equal to the client being updated",
        )));
    }
    if let Some(secret) = request.get("client_secret").and_then(Value::as_str) {
        if !clients::verify_secret(&client, secret, &state.data_keys.digester) {
            return Err(RegisterError::Metadata(MetadataError::metadata(
                "client_secret",
                "does not match the current client secret",
            )));
        }
    }

    let metadata = ClientMetadata::from_json(&request).map_err(RegisterError::Metadata)?;
    let registrar = match state.config.registration.policy {
        RegistrationPolicy::Token => Registrar::TrustedSelfService,
        RegistrationPolicy::Open | RegistrationPolicy::Closed => Registrar::OpenSelfService,
    };
    let (updated, new_secret) = clients::update_registration(
        state.store.as_ref(),
        &state.data_keys.digester,
        &client,
        &metadata,
        registrar,
        state.clock.now(),
    )
    .await?;
    state.registry.invalidate_clients();

    let mut document = client_information(&updated, &state.config.issuer);
    if let Some(secret) = new_secret {
        document["client_secret"] = Value::String(secret.expose().to_owned());
    }
    Ok(no_store(Json(document).into_response()))
}

async fn delete_registration(
    State(state): State<AppState>,
    Path(client_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, RegisterError> {
    authorized_client(&state, &headers, &client_id).await?;
    state.store.delete_client(&client_id).await?;
    state.registry.invalidate_clients();
    let ended = authorizations::end_client(state.store.as_ref(), &client_id, state.clock.now());
    let ended = ended.await?;
    let access_tokens = ended.access_tokens;
    tracing::info!(%client_id, access_tokens, "self-registered client deleted");
    let actor = crate::audit::client_actor(&client_id);
    let kind = crate::audit::kind::CLIENT_DELETED;
    clients::record_change(
        state.store.as_ref(),
        kind,
        &client_id,
        actor,
        state.clock.now(),
    )
    .await;
    Ok(no_store(StatusCode::NO_CONTENT.into_response()))
}

/// Builds the client information response (RFC 7591 section 3.2.1, RFC
/// 7592 section 3): the registered metadata, without secrets or digests.
pub fn client_information(client: &Client, issuer: &str) -> Value {
    let mut document = json!({
        "client_id": client.client_id,
        "client_id_issued_at": client.created_at.timestamp(),
        "client_name": client.name,
        "application_type": client.application_type.as_str(),
        "redirect_uris": client.redirect_uris,
        "post_logout_redirect_uris": client.post_logout_redirect_uris,
        "grant_types": client.grant_types,
        "response_types": client.response_types,
        "scope": client.scopes.join(" "),
        "token_endpoint_auth_method": client.auth_method.as_str(),
        "id_token_signed_response_alg": client.id_token_signed_response_alg,
        "allowed_origins": client.allowed_origins,
        "registration_client_uri": format!("{issuer}/register/{}", client.client_id),
    });
    if client.auth_method.uses_secret() {
        // RFC 7591 section 3.2.1: 0 means the secret does not expire.
        document["client_secret_expires_at"] = json!(0);
    }
    if let Some(jwks) = &client.jwks {
        document["jwks"] = jwks.clone();
    }
    if let Some(jwks_uri) = &client.jwks_uri {
        document["jwks_uri"] = json!(jwks_uri);
    }
    document
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(response: Response) -> Value {
        let bytes = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn errors_map_to_rfc7591_responses() {
        let metadata =
            RegisterError::Metadata(MetadataError::metadata("scope", "bad")).into_response();
        assert_eq!(metadata.status(), StatusCode::BAD_REQUEST);
        assert_eq!(metadata.headers()[header::CACHE_CONTROL], "no-store");
        let body = body_of(metadata).await;
        assert_eq!(body["error"], "invalid_client_metadata");
        assert_eq!(body["error_description"], "scope: bad");

        let disabled = RegisterError::Disabled.into_response();
        assert_eq!(disabled.status(), StatusCode::FORBIDDEN);

        let token = RegisterError::InvalidToken.into_response();
        assert_eq!(token.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            token.headers()[header::WWW_AUTHENTICATE],
            "Bearer realm=\"tessera\", error=\"invalid_token\""
        );
        let missing = RegisterError::MissingToken.into_response();
        assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            missing.headers()[header::WWW_AUTHENTICATE],
            "Bearer realm=\"tessera\""
        );

        let internal = RegisterError::Internal(StoreError::NotFound {
            what: "client",
            id: "secret-detail".into(),
        })
        .into_response();
        assert_eq!(internal.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = body_of(internal).await;
        assert_eq!(body["error"], "server_error");
        assert!(!body.to_string().contains("secret-detail"), "{body}");
    }
}
