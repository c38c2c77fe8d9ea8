//! `grant_type=refresh_token` (RFC 6749 section 6, OIDC Core section 12).
//!
//! Refresh tokens are opaque, stored as digests and rotate on every use.
//! Presenting a rotated token again revokes its whole grant and writes an
//! audit event (RFC 9700 section 4.14.2), except within
//! `tokens.refresh_reuse_interval` of its rotation, when it yields new
//! tokens from the same grant and revokes nothing. The default interval is
//! 0, so of two concurrent requests with one token exactly one wins and
//! the grant is revoked.
//!
//! A refresh may narrow the scope, never widen it; the rotated token keeps
//! the grant's scope. The refreshed ID token keeps `auth_time` and carries
//! no `nonce` (OIDC Core section 12.2).

use chrono::{DateTime, Utc};

use super::issue::{audience, issue_tokens, Audience, Issue, TokenResponse};
use super::{audit, store_failed, INVALID_GRANT};
use crate::audit::kind;
use crate::http::error::{ErrorCode, OAuthError};
use crate::oauth::scope::Scopes;
use crate::server::AppState;
use crate::store::{Client, GrantRecord, RefreshRotation, RefreshTokenRecord};
use crate::telemetry::metrics;

const INVALID_SCOPE: OAuthError = OAuthError::new(
    ErrorCode::InvalidScope,
    "the requested scope exceeds the scope of the grant",
);

/// The parameters of a `grant_type=refresh_token` request, from an
/// authenticated client.
pub struct RefreshRequest<'a> {
    pub client: &'a Client,
    pub refresh_token: &'a str,
    pub scope: Option<&'a str>,
    pub resource: Option<&'a str>,
}

/// Refreshes a grant. The request is checked against the grant before the
/// token rotates, so a request that fails (a widened scope, a resource the
/// client may not name, withdrawn offline access) spends nothing and the
/// same token works on a corrected retry. A rotated token presented again
/// is a reuse whatever the request contains.
pub async fn refresh(
    state: &AppState,
    request: RefreshRequest<'_>,
) -> Result<TokenResponse, OAuthError> {
    let client = request.client;
    let now = state.clock.now();
    let digest = state.data_keys.digester.digest(request.refresh_token);
    let presented = state
        .store
        .refresh_token(&digest, &client.client_id, now)
        .await
        .map_err(|error| store_failed(&error, "refresh token lookup"))?
        .ok_or(INVALID_GRANT)?;
    let checked = match presented.rotated_at {
        None => Some(check_request(state, &request, &presented.grant_id).await?),
        Some(_) => None,
    };

    let rotation = state
        .store
        .rotate_refresh_token(&digest, &client.client_id, now)
        .await
        .map_err(|error| store_failed(&error, "refresh token rotation"))?;
    let token = match rotation {
        RefreshRotation::Rotated(token) => token,
        RefreshRotation::Unknown => return Err(INVALID_GRANT),
        RefreshRotation::AlreadyRotated(token) => {
            if !within_reuse_interval(state, &token, now) {
                revoke_on_reuse(state, client, &token.grant_id).await?;
                return Err(INVALID_GRANT);
            }
            token
        }
    };
    // A token that a concurrent request rotated after the lookup was checked
    // above. A token rotated before the lookup is checked here, inside the
    // reuse interval.
    let checked = match checked {
        Some(checked) => checked,
        None => check_request(state, &request, &token.grant_id).await?,
    };
    issue_tokens(
        state,
        Issue {
            client,
            grant: &checked.grant,
            grant_type: "refresh_token",
            scopes: &checked.scopes,
            audience: checked.audience,
            nonce: None,
        },
    )
    .await
}

/// Returns whether a rotated token is presented within
/// `tokens.refresh_reuse_interval` of its rotation.
fn within_reuse_interval(state: &AppState, token: &RefreshTokenRecord, now: DateTime<Utc>) -> bool {
    let interval = state.config.tokens.refresh_reuse_interval.as_chrono();
    // `now` was read before the winning request set `rotated_at`, so it may
    // precede it: a zero interval must never count.
    interval > chrono::Duration::zero()
        && token
            .rotated_at
            .is_some_and(|rotated_at| now < rotated_at + interval)
}

/// Revokes the grant of a reused refresh token and records the reuse.
async fn revoke_on_reuse(
    state: &AppState,
    client: &Client,
    grant_id: &str,
) -> Result<(), OAuthError> {
    let now = state.clock.now();
    let revoked = state
        .store
        .revoke_grant(grant_id, now)
        .await
        .map_err(|error| store_failed(&error, "grant revocation"))?;
    tracing::warn!(client_id = %client.client_id, revoked, "rotated refresh token reused");
    metrics::refresh_token_reuse();
    let subject = state
        .store
        .grant(grant_id)
        .await
        .ok()
        .flatten()
        .map(|grant| grant.user_id.to_string());
    audit(state, kind::REFRESH_REUSE, subject, &client.client_id).await;
    Ok(())
}

/// The outcome of a valid refresh request: its live grant, the scopes of
/// the new tokens and their audience.
struct CheckedRefresh {
    grant: GrantRecord,
    scopes: Scopes,
    audience: Audience,
}

/// Checks a refresh request against its grant without changing anything.
async fn check_request(
    state: &AppState,
    request: &RefreshRequest<'_>,
    grant_id: &str,
) -> Result<CheckedRefresh, OAuthError> {
    let client = request.client;
    let now = state.clock.now();
    let grant = state
        .store
        .grant(grant_id)
        .await
        .map_err(|error| store_failed(&error, "grant lookup"))?
        .filter(|grant| grant.revoked_at.is_none() && now < grant.expires_at)
        .ok_or(INVALID_GRANT)?;
    // Scopes the administrator has since taken from the client end the
    // grant's use of them; losing offline access ends the grant.
    let still_held = |scope: &str| client.scopes.iter().any(|held| held == scope);
    let offline = grant.scopes.iter().any(|scope| scope == "offline_access");
    if offline && !still_held("offline_access") {
        return Err(INVALID_GRANT);
    }

    // Withdrawn consent ends offline access too (OIDC Core section 11).
    if offline && !client.first_party {
        let consented = state
            .store
            .consented_scopes(grant.user_id, &client.client_id)
            .await
            .map_err(|error| store_failed(&error, "consent lookup"))?;
        if !consented.iter().any(|scope| scope == "offline_access") {
            return Err(INVALID_GRANT);
        }
    }

    let granted: Scopes = grant.scopes.iter().map(String::as_str).collect();
    let scopes = match request.scope {
        None => granted.clone(),
        Some(text) => {
            let requested = Scopes::parse(text).map_err(|_| INVALID_SCOPE)?;
            if requested.is_empty() || !requested.is_subset(&granted) {
                return Err(INVALID_SCOPE);
            }
            requested
        }
    };
    let scopes = scopes.retain(still_held);
    let audience = audience(state, client, &grant, request.resource).await?;
    Ok(CheckedRefresh {
        grant,
        scopes,
        audience,
    })
}
