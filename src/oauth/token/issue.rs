//! Minting, recording and returning one access token, shared by every
//! grant.
//!
//! The inner JWT is signed with the resource server's algorithm and
//! encrypted to its key, or for Tessera's own userinfo endpoint signed
//! with ES256 and encrypted to Tessera's current encryption key. The record
//! (digest of the whole token string) is the only store write.
//!
//! `cargo test --release --lib mint_cost -- --ignored --nocapture` prints
//! the costs behind two choices. An RSA signature takes about a
//! millisecond, so RS256 and PS256 tokens are minted on the blocking pool,
//! while ES256 and EdDSA tokens (tens to a few hundred microseconds with
//! the encryption) are minted on the async runtime. Building an encrypter
//! from a JWK costs about as much as encrypting, so encrypters are cached
//! ([`crate::tokens::recipients::RecipientCache`], held by the registry).

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use crate::http::error::OAuthError;
use crate::keys::SigningAlg;
use crate::oauth::lifetimes;
use crate::oauth::scope::Scopes;
use crate::server::AppState;
use crate::store::{AccessTokenRecord, Client, ResourceServer};
use crate::telemetry::metrics;
use crate::tokens::access::{mint_for, AccessTokenClaims, AccessTokenRequest};
use crate::tokens::jwe::Recipient;

pub use crate::oauth::grants::issue::TokenResponse;

/// Signing algorithm of tokens addressed to Tessera itself.
const OWN_TOKEN_ALG: SigningAlg = SigningAlg::ES256;

/// The recipient of an access token.
pub enum Audience {
    /// Tessera's own userinfo endpoint, with Tessera's encryption key.
    Tessera,
    Resource(Arc<ResourceServer>),
}

/// Decisions a grant made about the token it issues.
pub struct AccessTokenGrant<'a> {
    pub client: &'a Client,
    pub subject: &'a str,
    pub grant_type: &'a str,
    pub grant_id: Option<&'a str>,
    pub audience: &'a Audience,
    pub scopes: &'a Scopes,
    pub auth_time: Option<DateTime<Utc>>,
}

/// The minting inputs of one audience.
struct Target {
    /// The `aud` claim: a resource identifier, or the issuer.
    identifier: String,
    lifetime: Duration,
    algorithm: SigningAlg,
    recipient: Arc<Recipient>,
}

/// Mints the access token for `grant`, records it and builds the response.
pub async fn issue_access_token(
    state: &AppState,
    grant: &AccessTokenGrant<'_>,
) -> Result<TokenResponse, OAuthError> {
    let now = state.clock.now();
    let client_id = grant.client.client_id.as_str();
    let target = target(state, grant.client, grant.audience, now).await?;
    let identifier = target.identifier.as_str();

    let scope = grant.scopes.to_string();
    let claims = AccessTokenClaims::new(
        &AccessTokenRequest {
            issuer: &state.config.issuer,
            subject: grant.subject,
            audience: identifier,
            client_id,
            scope: &scope,
            lifetime: target.lifetime,
            auth_time: grant.auth_time,
        },
        now,
    );
    let algorithm = target.algorithm;
    let recipient = target.recipient;
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
        .map_err(|error| mint_failed(identifier, &error))?
    } else {
        mint_for(
            &claims,
            |typ, payload| state.keys.sign(algorithm, typ, payload, now),
            &recipient,
        )
    };
    let token = minted.map_err(|error| mint_failed(identifier, &error))?;

    let issued_at = DateTime::from_timestamp(claims.iat, 0).unwrap_or(now);
    let record = AccessTokenRecord {
        jti: claims.jti.clone(),
        digest: state.data_keys.digester.digest(&token),
        client_id: client_id.to_owned(),
        subject: grant.subject.to_owned(),
        grant_id: grant.grant_id.map(str::to_owned),
        grant_type: grant.grant_type.to_owned(),
        audience: target.identifier.clone(),
        scope: scope.clone(),
        issued_at,
        expires_at: claims.expires_at(),
        revoked_at: None,
    };
    state.access_tokens.insert(record).await.map_err(|error| {
        tracing::error!(error = ?error, %client_id, "recording an access token failed");
        OAuthError::for_store(&error)
    })?;
    metrics::access_token_issued(grant.grant_type, &target.identifier);
    tracing::info!(
        %client_id,
        jti = %claims.jti,
        audience = %target.identifier,
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

/// Resolves the audience's identifier, token lifetime (see
/// [`lifetimes::access_token_ttl`]), signing algorithm and encrypter. No
/// usable encryption key means no token, so the request fails closed.
async fn target(
    state: &AppState,
    client: &Client,
    audience: &Audience,
    now: DateTime<Utc>,
) -> Result<Target, OAuthError> {
    let defaults = &state.config.tokens;
    let recipients = state.registry.recipients();
    match audience {
        Audience::Tessera => {
            let issuer = state.config.issuer.as_str();
            let key = state
                .keys
                .encryption_key(now)
                .ok_or_else(|| cannot_issue(issuer, "Tessera has no current encryption key"))?;
            let recipient = recipients
                .recipient(key.public_jwk.as_ref().clone())
                .map_err(|error| mint_failed(issuer, &error))?;
            Ok(Target {
                identifier: issuer.to_owned(),
                lifetime: lifetimes::access_token_ttl(defaults, client, None),
                algorithm: OWN_TOKEN_ALG,
                recipient,
            })
        }
        Audience::Resource(resource) => {
            let identifier = resource.identifier.as_str();
            let algorithm = SigningAlg::parse(&resource.signing_alg).ok_or_else(|| {
                cannot_issue(identifier, "the signing algorithm is not supported")
            })?;
            let members = state
                .registry
                .encryption_key(resource)
                .await
                .map_err(|error| mint_failed(identifier, &error))?;
            let recipient = recipients
                .recipient(members)
                .map_err(|error| mint_failed(identifier, &error))?;
            Ok(Target {
                identifier: identifier.to_owned(),
                lifetime: lifetimes::access_token_ttl(defaults, client, Some(resource)),
                algorithm,
                recipient,
            })
        }
    }
}

/// Returns whether minting with `algorithm` goes to the blocking pool,
/// because an RSA signature (about a millisecond) would stall the other
/// requests of an async worker.
fn runs_on_blocking_pool(algorithm: SigningAlg) -> bool {
    matches!(algorithm, SigningAlg::RS256 | SigningAlg::PS256)
}

fn mint_failed(audience: &str, error: &dyn std::fmt::Display) -> OAuthError {
    tracing::error!(error = %error, audience, "minting an access token failed");
    OAuthError::server_error()
}

fn cannot_issue(audience: &str, reason: &'static str) -> OAuthError {
    tracing::error!(audience, reason, "cannot issue an access token");
    OAuthError::server_error()
}
