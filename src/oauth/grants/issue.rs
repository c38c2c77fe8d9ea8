//! The tokens a grant issues: an access token for one audience, an ID
//! token when `openid` is in scope, and a rotated refresh token when the
//! grant may be refreshed.
//!
//! The audience is the grant's resource, which a request may name again but
//! not change. A grant without one gets Tessera itself when `openid` was
//! granted, else the client's default resource, else `invalid_target`.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{store_failed, INVALID_GRANT};
use crate::crypto::random_token;
use crate::http::error::{no_store, ErrorCode, OAuthError};
use crate::keys::SigningAlg;
use crate::oauth::lifetimes;
use crate::oauth::resource::check_target;
use crate::oauth::scope::Scopes;
pub use crate::oauth::token::Audience;
use crate::oauth::token::{issue_access_token, AccessTokenGrant};
use crate::server::AppState;
use crate::store::{
    AuditEvent, Client, GrantRecord, RefreshTokenRecord, ResourceServer, StoreError,
};
use crate::tokens::id_token::{IdTokenClaims, IdTokenRequest, UserClaims};

const INVALID_TARGET: OAuthError = OAuthError::new(
    ErrorCode::InvalidTarget,
    "the requested resource is unknown or not allowed for this client",
);

/// A successful token response (RFC 6749 section 5.1, OIDC Core 3.1.3.3).
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

impl IntoResponse for TokenResponse {
    fn into_response(self) -> Response {
        let mut response = (StatusCode::OK, axum::Json(self)).into_response();
        no_store(response.headers_mut());
        response
    }
}

/// Checks that `client` may name `identifier` (RFC 8707, DESIGN
/// "Policies"): a registered resource server that is the client's default
/// resource or defines one of the client's scopes.
pub async fn allowed_resource(
    state: &AppState,
    client: &Client,
    identifier: &str,
) -> Result<Arc<ResourceServer>, OAuthError> {
    let resource = state
        .registry
        .resource_server(identifier)
        .await
        .map_err(|error| store_failed(&error, "resource server lookup"))?;
    check_target(client, resource)
}

/// Picks the audience of a token request on `grant`. A refresh that
/// narrows the scope keeps the grant's audience.
pub async fn audience(
    state: &AppState,
    client: &Client,
    grant: &GrantRecord,
    requested: Option<&str>,
) -> Result<Audience, OAuthError> {
    if let Some(requested) = requested {
        if grant.resource.as_deref() != Some(requested) {
            return Err(INVALID_TARGET);
        }
    }
    if let Some(resource) = &grant.resource {
        return Ok(Audience::Resource(
            allowed_resource(state, client, resource).await?,
        ));
    }
    if grant.scopes.iter().any(|scope| scope == "openid") {
        return Ok(Audience::Tessera);
    }
    match &client.default_resource {
        Some(resource) => Ok(Audience::Resource(
            allowed_resource(state, client, resource).await?,
        )),
        None => Err(INVALID_TARGET),
    }
}

/// The inputs of one token request on a grant.
pub struct Issue<'a> {
    pub client: &'a Client,
    pub grant: &'a GrantRecord,
    pub grant_type: &'a str,
    /// The access token's scope: the grant's, or a narrower set.
    pub scopes: &'a Scopes,
    pub audience: Audience,
    /// Set on the code exchange only (OIDC Core section 12.2).
    pub nonce: Option<&'a str>,
}

/// Returns whether a grant gets a refresh token: the client needs the
/// `refresh_token` grant type and, for an OpenID grant, the user must have
/// granted `offline_access` (OIDC Core section 11).
pub fn gets_refresh_token(client: &Client, grant_scopes: &[String]) -> bool {
    let has = |scope: &str| grant_scopes.iter().any(|granted| granted == scope);
    client
        .grant_types
        .iter()
        .any(|grant| grant == "refresh_token")
        && (!has("openid") || has("offline_access"))
}

/// Mints and records the tokens of one successful token request.
pub async fn issue_tokens(state: &AppState, issue: Issue<'_>) -> Result<TokenResponse, OAuthError> {
    let now = state.clock.now();
    let grant = issue.grant;
    let client = issue.client;
    let user = state
        .store
        .user_by_id(grant.user_id)
        .await
        .map_err(|error| store_failed(&error, "user lookup"))?
        .filter(|user| !user.disabled)
        .ok_or(INVALID_GRANT)?;
    let subject = user.id.to_string();
    let scope = issue.scopes.to_string();

    let (access_token, expires_in) = access_token(state, &issue, &subject).await?;

    let id_token = if issue.scopes.contains("openid") {
        Some(id_token(state, &issue, &user, &access_token, now)?)
    } else {
        None
    };

    let refresh_token = if gets_refresh_token(client, &grant.scopes) {
        let token = random_token();
        let idle = lifetimes::refresh_token_idle_ttl(&state.config.tokens, client);
        let record = RefreshTokenRecord {
            digest: state.data_keys.digester.digest(&token),
            grant_id: grant.id.clone(),
            client_id: client.client_id.clone(),
            issued_at: now,
            expires_at: (now + idle).min(grant.expires_at),
            rotated_at: None,
        };
        if let Err(error) = state.store.insert_refresh_token(&record).await {
            return Err(refresh_token_not_stored(state, &grant.id, &error, now).await);
        }
        Some(token)
    } else {
        None
    };

    // A concurrent replay or reuse may have revoked the grant while these
    // tokens were recorded, so revoke again to catch records written after
    // it. This request won, so the response still goes out, but its tokens
    // are dead, as a replay requires.
    let current = state
        .store
        .grant(&grant.id)
        .await
        .map_err(|error| store_failed(&error, "grant lookup"))?;
    if current.is_none_or(|current| current.revoked_at.is_some()) {
        state
            .store
            .revoke_grant(&grant.id, now)
            .await
            .map_err(|error| store_failed(&error, "grant revocation"))?;
    }

    tracing::info!(client_id = %client.client_id, grant_type = issue.grant_type, "tokens issued");
    let event = AuditEvent {
        subject: Some(subject.clone()),
        client_id: Some(client.client_id.clone()),
        actor: Some(crate::audit::client_actor(&client.client_id)),
        detail: Some(format!("{}; scope {scope}", issue.grant_type)),
        ..AuditEvent::new(crate::audit::kind::TOKENS_ISSUED, now)
    };
    crate::audit::record(state.store.as_ref(), &event).await;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in,
        scope,
        refresh_token,
        id_token,
    })
}

/// Returns the error for a refresh token that was not stored. A grant
/// deleted meanwhile with its client fails the insert on the foreign key,
/// which is `invalid_grant` once the grant's access tokens are revoked.
async fn refresh_token_not_stored(
    state: &AppState,
    grant_id: &str,
    error: &StoreError,
    now: DateTime<Utc>,
) -> OAuthError {
    match state.store.grant(grant_id).await {
        Ok(None) => match state.store.revoke_grant(grant_id, now).await {
            Ok(_) => {
                tracing::info!(grant_id, "grant deleted while its tokens were issued");
                INVALID_GRANT
            }
            Err(revoke_error) => store_failed(&revoke_error, "grant revocation"),
        },
        _ => store_failed(error, "refresh token insert"),
    }
}

/// Mints and records the access token of `issue`. A token for a resource
/// server carries only the granted scopes that server defines, so `openid`,
/// `offline_access` and another server's scopes stay out of it; a token for
/// Tessera itself carries the whole grant, which userinfo reads.
async fn access_token(
    state: &AppState,
    issue: &Issue<'_>,
    subject: &str,
) -> Result<(String, i64), OAuthError> {
    let scopes = match &issue.audience {
        Audience::Tessera => issue.scopes.clone(),
        Audience::Resource(resource) => issue
            .scopes
            .retain(|scope| resource.scopes.iter().any(|defined| defined == scope)),
    };
    let issued = issue_access_token(
        state,
        &AccessTokenGrant {
            client: issue.client,
            subject,
            grant_type: issue.grant_type,
            grant_id: Some(&issue.grant.id),
            audience: &issue.audience,
            scopes: &scopes,
            auth_time: Some(issue.grant.auth_time),
        },
    )
    .await?;
    Ok((issued.access_token, issued.expires_in))
}

fn id_token(
    state: &AppState,
    issue: &Issue<'_>,
    user: &crate::store::UserRecord,
    access_token: &str,
    now: DateTime<Utc>,
) -> Result<String, OAuthError> {
    let alg = SigningAlg::parse(&issue.client.id_token_signed_response_alg).ok_or_else(|| {
        tracing::error!(client_id = %issue.client.client_id, "unsupported ID token algorithm");
        OAuthError::server_error()
    })?;
    let subject = user.id.to_string();
    let claims = IdTokenClaims::new(
        IdTokenRequest {
            issuer: &state.config.issuer,
            subject: &subject,
            client_id: &issue.client.client_id,
            lifetime: state.config.tokens.id_token_ttl.as_chrono(),
            auth_time: issue.grant.auth_time,
            nonce: issue.nonce,
            access_token: Some(access_token),
            alg,
            sid: &issue.grant.sid,
            amr: &issue.grant.amr,
            user: UserClaims::for_scopes(user, issue.scopes.iter()),
        },
        now,
    );
    let payload = serde_json::to_vec(&claims).map_err(|_| OAuthError::server_error())?;
    state.keys.sign(alg, "JWT", &payload, now).map_err(|error| {
        tracing::error!(error = %error, alg = alg.as_str(), "signing an ID token failed");
        OAuthError::server_error()
    })
}
