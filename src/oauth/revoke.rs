//! `POST /revoke` (RFC 7009): a client revokes an access or refresh token
//! issued to it.
//!
//! Revoking a refresh token revokes its whole grant, with every refresh and
//! access token issued from it (section 2.1). The response is 200 whether or
//! not anything was revoked (section 2.2), so a caller learns nothing about
//! tokens it does not own, and a token of another client stays valid.
//! `token_type_hint` is ignored: a refresh token is looked up by digest,
//! then an access token by the `jti` in its header and its digest.

use std::net::IpAddr;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;

use super::client_auth;
use crate::audit::kind;
use crate::http::client_ip::ClientIp;
use crate::http::cors::{self, CorsClient};
use crate::http::error::{no_store, OAuthError};
use crate::http::form::OAuthForm;
use crate::http::rate_limit::{CallerKey, Endpoint};
use crate::oauth::grants::audit;
use crate::server::AppState;
use crate::store::StoreError;
use crate::tokens::access::record_key;

pub fn router(state: &AppState) -> Router<AppState> {
    Router::new().route("/revoke", cors::for_clients(post(revoke), state, &["POST"]))
}

async fn revoke(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    cors: CorsClient,
    headers: HeaderMap,
    form: OAuthForm,
) -> Response {
    match handle(&state, ip, &cors, &headers, &form).await {
        Ok(()) => {
            let mut response = StatusCode::OK.into_response();
            no_store(response.headers_mut());
            response
        }
        Err(error) => error.into_response(),
    }
}

async fn handle(
    state: &AppState,
    ip: IpAddr,
    cors: &CorsClient,
    headers: &HeaderMap,
    form: &OAuthForm,
) -> Result<(), OAuthError> {
    let authenticated = client_auth::authenticate_request(state, headers, form).await;
    if let Ok(client) = &authenticated {
        cors.set_client(client);
    }
    let client = state
        .rate_limits
        .admit(Endpoint::Revoke, ip, authenticated, |client| {
            CallerKey::client(client, ip)
        })?;
    let token = form.require("token", "token is missing")?;
    let key = record_key(token, &state.data_keys.digester);
    let now = state.clock.now();
    let failed = |error: StoreError| {
        tracing::error!(error = ?error, client_id = %client.client_id, "revoking a token failed");
        OAuthError::for_store(&error)
    };

    let refresh = state
        .store
        .refresh_token(&key.digest, &client.client_id, now)
        .await
        .map_err(failed)?;
    if let Some(refresh) = refresh {
        let revoked = state
            .store
            .revoke_grant(&refresh.grant_id, now)
            .await
            .map_err(failed)?;
        if revoked {
            tracing::info!(client_id = %client.client_id, "grant revoked with its refresh token");
            audit(state, kind::GRANT_REVOKED, None, &client.client_id).await;
        }
        return Ok(());
    }

    let revoked = state
        .store
        .revoke_access_token(&key, &client.client_id, now)
        .await
        .map_err(failed)?;
    if revoked {
        tracing::info!(client_id = %client.client_id, "access token revoked");
        audit(state, kind::ACCESS_TOKEN_REVOKED, None, &client.client_id).await;
    }
    Ok(())
}
