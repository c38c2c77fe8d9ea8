//! Minting, recording and returning one access token, shared by every
//! grant.
//!
//! The inner JWT is signed with the resource server's algorithm and
//! encrypted to its key. The record (digest of the whole token string) is
//! the only store write.
//!
//! `cargo test --release --lib mint_cost -- --ignored --nocapture` prints
//! the costs behind two choices. An RSA signature takes about a
//! millisecond, so RS256 and PS256 tokens are minted on the blocking pool,
//! while ES256 and EdDSA tokens (tens to a few hundred microseconds with
//! the encryption) are minted on the async runtime. Building an encrypter
//! from a JWK costs about as much as encrypting, so encrypters are cached
//! ([`RecipientCache`]).

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use super::recipients::RecipientCache;
use crate::http::error::OAuthError;
use crate::keys::SigningAlg;
use crate::oauth::scope::Scopes;
use crate::server::AppState;
use crate::store::{AccessTokenRecord, ResourceServer};
use crate::telemetry::metrics;
use crate::tokens::access::{mint_for, AccessTokenClaims, AccessTokenRequest};
use crate::tokens::jwe::Recipient;

/// Decisions a grant made about the token it issues.
pub struct AccessTokenGrant<'a> {
    pub client_id: &'a str,
    pub subject: &'a str,
    pub grant_type: &'a str,
    pub grant_id: Option<&'a str>,
    pub resource: &'a ResourceServer,
    pub scopes: &'a Scopes,
    pub auth_time: Option<DateTime<Utc>>,
}

pub use crate::oauth::grants::issue::TokenResponse;

/// Mints the access token for `grant`, records it and builds the response.
pub async fn issue_access_token(
    state: &AppState,
    recipients: &RecipientCache,
    grant: &AccessTokenGrant<'_>,
) -> Result<TokenResponse, OAuthError> {
    let resource = grant.resource;
    let now = state.clock.now();
    let lifetime = match resource.access_token_ttl_seconds {
        Some(seconds) => Duration::seconds(seconds),
        None => Duration::from_std(state.config.tokens.access_token_ttl.as_duration())
            .map_err(|_| server_error(resource, "tokens.access_token_ttl is out of range"))?,
    };
    let algorithm = SigningAlg::parse(&resource.signing_alg)
        .ok_or_else(|| server_error(resource, "the signing algorithm is not supported"))?;
    let recipient = recipient(state, recipients, resource).await?;

    let scope = grant.scopes.to_string();
    let claims = AccessTokenClaims::new(
        &AccessTokenRequest {
            issuer: &state.config.issuer,
            subject: grant.subject,
            audience: &resource.identifier,
            client_id: grant.client_id,
            scope: &scope,
            lifetime,
            auth_time: grant.auth_time,
        },
        now,
    );
    let minted = if runs_on_blocking_pool(algorithm) {
        let keys = Arc::clone(&state.keys);
        let claims = claims.clone();
        tokio::task::spawn_blocking(move || {
            mint_for(
                &claims,
                |typ, payload| keys.sign(algorithm, typ, payload, now),
                &recipient,
            )
        })
        .await
        .map_err(|error| server_error_from(resource, &error))?
    } else {
        mint_for(
            &claims,
            |typ, payload| state.keys.sign(algorithm, typ, payload, now),
            &recipient,
        )
    };
    let token = minted.map_err(|error| server_error_from(resource, &error))?;

    let issued_at = DateTime::from_timestamp(claims.iat, 0).unwrap_or(now);
    let record = AccessTokenRecord {
        jti: claims.jti.clone(),
        digest: state.data_keys.digester.digest(&token),
        client_id: grant.client_id.to_owned(),
        subject: grant.subject.to_owned(),
        grant_id: grant.grant_id.map(str::to_owned),
        grant_type: grant.grant_type.to_owned(),
        audience: resource.identifier.clone(),
        scope: scope.clone(),
        issued_at,
        expires_at: claims.expires_at(),
        revoked_at: None,
    };
    state.store.insert_access_token(&record).await.map_err(|error| {
        tracing::error!(error = ?error, client_id = %grant.client_id, "recording an access token failed");
        OAuthError::server_error()
    })?;
    metrics::access_token_issued(grant.grant_type, &resource.identifier);
    tracing::info!(
        client_id = %grant.client_id,
        jti = %claims.jti,
        audience = %resource.identifier,
        grant_type = %grant.grant_type,
        "access token issued"
    );
    Ok(TokenResponse {
        access_token: token,
        token_type: "Bearer",
        expires_in: claims.exp - claims.iat,
        scope,
        refresh_token: None,
        id_token: None,
    })
}

/// Returns the encrypter for the resource server's public key. No usable
/// key means no token, so the request fails closed.
async fn recipient(
    state: &AppState,
    recipients: &RecipientCache,
    resource: &ResourceServer,
) -> Result<Arc<Recipient>, OAuthError> {
    let members = state
        .registry
        .encryption_key(resource)
        .await
        .map_err(|error| {
            tracing::error!(error = %error, resource = %resource.identifier, "no usable encryption key");
            OAuthError::server_error()
        })?;
    recipients
        .recipient(members)
        .map_err(|error| server_error_from(resource, &error))
}

/// Returns whether minting with `algorithm` goes to the blocking pool,
/// because an RSA signature (about a millisecond) would stall the other
/// requests of an async worker.
fn runs_on_blocking_pool(algorithm: SigningAlg) -> bool {
    matches!(algorithm, SigningAlg::RS256 | SigningAlg::PS256)
}

fn server_error_from(resource: &ResourceServer, error: &dyn std::fmt::Display) -> OAuthError {
    tracing::error!(error = %error, resource = %resource.identifier, "minting an access token failed");
    OAuthError::server_error()
}

fn server_error(resource: &ResourceServer, reason: &'static str) -> OAuthError {
    tracing::error!(resource = %resource.identifier, reason, "cannot issue an access token");
    OAuthError::server_error()
}
