//! `POST /token` (RFC 6749 section 3.2): the form and client checks every
//! grant shares, then one module per grant type.
//!
//! Only `client_credentials` exists so far; every other `grant_type`
//! (including `authorization_code` and `refresh_token`, which come with the
//! authorization endpoint) is `unsupported_grant_type`.

use std::net::IpAddr;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;

use super::client_auth;
use super::grants::code::{exchange_code, CodeExchange};
use super::grants::refresh::{refresh, RefreshRequest};
use crate::http::client_ip::ClientIp;
use crate::http::cors::{self, CorsClient};
use crate::http::error::{ErrorCode, OAuthError};
use crate::http::form::OAuthForm;
use crate::http::rate_limit::{CallerKey, Endpoint};
use crate::server::AppState;

mod client_credentials;
mod issue;

pub use issue::{issue_access_token, AccessTokenGrant, Audience, TokenResponse};

/// Routes `POST /token`, which browser apps of clients with allowed
/// origins may call (CORS).
pub fn router(state: &AppState) -> Router<AppState> {
    Router::new().route("/token", cors::for_clients(post(token), state, &["POST"]))
}

async fn token(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    cors: CorsClient,
    headers: HeaderMap,
    form: OAuthForm,
) -> Response {
    match handle(&state, ip, &cors, &headers, &form).await {
        Ok(response) => response.into_response(),
        Err(error) => error.into_response(),
    }
}

async fn handle(
    state: &AppState,
    ip: IpAddr,
    cors: &CorsClient,
    headers: &HeaderMap,
    form: &OAuthForm,
) -> Result<Response, OAuthError> {
    let grant_type = form.require("grant_type", "grant_type is missing")?;
    let authenticated = client_auth::authenticate_request(state, headers, form).await;
    if let Ok(client) = &authenticated {
        cors.set_client(client);
    }
    let client = state
        .rate_limits
        .admit(Endpoint::Token, ip, authenticated, |client| {
            CallerKey::client(client, ip)
        })?;
    let known = ["client_credentials", "authorization_code", "refresh_token"];
    if known.contains(&grant_type) && !client.grant_types.iter().any(|grant| grant == grant_type) {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "the client is not registered for this grant type",
        ));
    }
    match grant_type {
        "client_credentials" => client_credentials::grant(state, &client, form)
            .await
            .map(IntoResponse::into_response),
        "authorization_code" => {
            let exchange = CodeExchange {
                client: &client,
                code: form.require("code", "code is missing")?,
                redirect_uri: form.get("redirect_uri"),
                code_verifier: form.get("code_verifier"),
                resource: form.get("resource"),
            };
            exchange_code(state, exchange)
                .await
                .map(IntoResponse::into_response)
        }
        "refresh_token" => {
            let request = RefreshRequest {
                client: &client,
                refresh_token: form.require("refresh_token", "refresh_token is missing")?,
                scope: form.get("scope"),
                resource: form.get("resource"),
            };
            refresh(state, request)
                .await
                .map(IntoResponse::into_response)
        }
        _ => Err(OAuthError::new(
            ErrorCode::UnsupportedGrantType,
            "the grant type is not supported",
        )),
    }
}
