//! The client credentials grant (RFC 6749 section 4.4): a token whose
//! subject is the client itself, for one resource server (RFC 8707).

use std::sync::Arc;

use super::issue::{issue_access_token, AccessTokenGrant, Audience, TokenResponse};
use crate::http::error::{ErrorCode, OAuthError};
use crate::http::form::OAuthForm;
use crate::oauth::resource::{check_target, grant_scopes, requested_resource};
use crate::oauth::scope::Scopes;
use crate::server::AppState;
use crate::store::Client;

pub const GRANT_TYPE: &str = "client_credentials";

/// Issues an access token to the authenticated `client`.
pub async fn grant(
    state: &AppState,
    client: &Arc<Client>,
    form: &OAuthForm,
) -> Result<TokenResponse, OAuthError> {
    if !client.grant_types.iter().any(|grant| grant == GRANT_TYPE) {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "the client may not use the client_credentials grant",
        ));
    }
    let requested_scopes = form
        .get("scope")
        .map(Scopes::parse)
        .transpose()
        .map_err(|_| {
            OAuthError::new(
                ErrorCode::InvalidScope,
                "the scope contains characters RFC 6749 does not allow",
            )
        })?;

    let identifier = requested_resource(client, form.get("resource"))?;
    let resource = state
        .registry
        .resource_server(identifier)
        .await
        .map_err(|error| {
            tracing::error!(error = ?error, "resource server lookup failed");
            OAuthError::for_store(&error)
        })?;
    let resource = check_target(client, resource)?;
    let scopes = grant_scopes(requested_scopes.as_ref(), client, &resource)?;

    issue_access_token(
        state,
        &AccessTokenGrant {
            client,
            subject: &client.client_id,
            grant_type: GRANT_TYPE,
            grant_id: None,
            audience: &Audience::Resource(resource),
            scopes: &scopes,
            auth_time: None,
        },
    )
    .await
}
