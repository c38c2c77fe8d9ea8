//! `POST /revoke` (RFC 7009): a client revokes an access token issued to
//! it.
//!
//! The response is 200 whether or not anything was revoked (section 2.2), so
//! a caller learns nothing about tokens it does not own, and a token of
//! another client stays valid. `token_type_hint` is ignored.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;

use super::client_auth;
use crate::http::error::{no_store, OAuthError};
use crate::http::form::OAuthForm;
use crate::server::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/revoke", post(revoke))
}

async fn revoke(State(state): State<AppState>, headers: HeaderMap, form: OAuthForm) -> Response {
    match handle(&state, &headers, &form).await {
        Ok(()) => {
            let mut response = StatusCode::OK.into_response();
            no_store(response.headers_mut());
            response
        }
        Err(error) => error.into_response(),
    }
}

async fn handle(state: &AppState, headers: &HeaderMap, form: &OAuthForm) -> Result<(), OAuthError> {
    let presented = client_auth::read_credentials(headers, form)?;
    let client = client_auth::authenticate(state, &presented).await?;
    let token = form.require("token", "token is missing")?;
    let digest = state.data_keys.digester.digest(token);
    // NOTE: only access tokens are looked up. Refresh tokens do not exist
    // yet; when they do, revoking one must also revoke its grant's access
    // tokens (`revoke_grant_access_tokens`).
    let revoked = state
        .store
        .revoke_access_token(&digest, &client.client_id, state.clock.now())
        .await
        .map_err(|error| {
            tracing::error!(error = ?error, client_id = %client.client_id, "revoking an access token failed");
            OAuthError::server_error()
        })?;
    if revoked {
        tracing::info!(client_id = %client.client_id, "access token revoked");
    }
    Ok(())
}
