//! Authorization codes: issued at `/authorize`, exchanged once at `/token`
//! (RFC 6749 sections 4.1.2 and 4.1.3, RFC 7636 section 4.6).
//!
//! A code is 256 bits of randomness stored as a digest, valid for
//! `tokens.authorization_code_ttl`, and consumed by one atomic statement
//! whose condition includes the client. Presenting a used code again
//! revokes the grant it started, with every refresh and access token
//! issued from it (RFC 9700 section 4.2.4), and writes an audit event.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::issue::{audience, issue_tokens, Audience, Issue, TokenResponse};
use super::{audit, store_failed, INVALID_GRANT};
use crate::audit::kind;
use crate::crypto::random_token;
use crate::http::error::OAuthError;
use crate::oauth::authorize::request::AuthorizationRequest;
use crate::oauth::lifetimes;
use crate::oauth::scope::Scopes;
use crate::server::AppState;
use crate::store::{AuthorizationCodeRecord, Client, CodeConsumption, GrantRecord, StoreError};
use crate::telemetry::metrics;

/// The user's side of an approved authorization.
pub struct Approval {
    pub user_id: Uuid,
    pub auth_time: DateTime<Utc>,
    pub amr: Vec<String>,
    pub sid: String,
}

/// Starts a grant for an approved request and returns its code. The
/// grant's refresh tokens end after the client's absolute refresh-token
/// lifetime, counted from now.
pub async fn issue_code(
    state: &AppState,
    request: &AuthorizationRequest,
    approval: Approval,
) -> Result<String, StoreError> {
    let now = state.clock.now();
    let tokens = &state.config.tokens;
    // The client may have been deleted while the user was on the login page.
    let client = state
        .registry
        .client(&request.client_id)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: "client",
            id: request.client_id.clone(),
        })?;
    let grant = GrantRecord {
        id: Uuid::new_v4().to_string(),
        client_id: request.client_id.clone(),
        user_id: approval.user_id,
        scopes: request.scopes.clone(),
        resource: request.resource.clone(),
        auth_time: approval.auth_time,
        amr: approval.amr,
        sid: approval.sid,
        created_at: now,
        expires_at: now + lifetimes::refresh_token_absolute_ttl(tokens, &client),
        revoked_at: None,
    };
    state.store.insert_grant(&grant).await?;
    let code = random_token();
    let record = AuthorizationCodeRecord {
        digest: state.data_keys.digester.digest(&code),
        grant_id: grant.id,
        client_id: request.client_id.clone(),
        redirect_uri: request.target.redirect_uri.clone(),
        code_challenge: request.code_challenge.clone(),
        nonce: request.nonce.clone(),
        expires_at: now + tokens.authorization_code_ttl.as_chrono(),
        consumed_at: None,
    };
    state.store.insert_authorization_code(&record).await?;
    Ok(code)
}

/// The parameters of a `grant_type=authorization_code` request, from an
/// authenticated client.
pub struct CodeExchange<'a> {
    pub client: &'a Client,
    pub code: &'a str,
    pub redirect_uri: Option<&'a str>,
    pub code_verifier: Option<&'a str>,
    pub resource: Option<&'a str>,
}

/// Exchanges a code for tokens. The request is checked against the code
/// before the code is consumed, so a wrong `redirect_uri` or
/// `code_verifier` spends nothing: guessing a 256-bit verifier is no
/// attack, and the client's corrected retry is not mistaken for a replay.
/// A used code presented again is a replay whatever the request contains.
pub async fn exchange_code(
    state: &AppState,
    exchange: CodeExchange<'_>,
) -> Result<TokenResponse, OAuthError> {
    let client = exchange.client;
    let now = state.clock.now();
    let digest = state.data_keys.digester.digest(exchange.code);
    let presented = state
        .store
        .authorization_code(&digest, &client.client_id, now)
        .await
        .map_err(|error| store_failed(&error, "code lookup"))?
        .ok_or(INVALID_GRANT)?;
    // A used code skips the checks, because it is a replay whatever the
    // request contains.
    let checked = match presented.consumed_at {
        None => Some(check_exchange(state, &presented, &exchange).await?),
        Some(_) => None,
    };

    // NOTE: consuming the code and recording the tokens are separate
    // statements. When the database fails between them (an outage), the
    // client gets 503 and its retry counts as a replay: invalid_grant, the
    // grant revoked and a replay audit event, though nothing was replayed.
    let consumed = state
        .store
        .consume_authorization_code(&digest, &client.client_id, now)
        .await
        .map_err(|error| store_failed(&error, "code consumption"))?;
    let code = match consumed {
        CodeConsumption::Consumed(code) => code,
        CodeConsumption::Unknown => return Err(INVALID_GRANT),
        CodeConsumption::Replayed { grant_id } => {
            let revoked = state
                .store
                .revoke_grant(&grant_id, now)
                .await
                .map_err(|error| store_failed(&error, "grant revocation"))?;
            tracing::warn!(client_id = %client.client_id, revoked, "authorization code replayed");
            metrics::authorization_code_replay();
            audit(state, kind::CODE_REPLAY, None, &client.client_id).await;
            return Err(INVALID_GRANT);
        }
    };

    // Only an unused code can be consumed, and an unused code was checked.
    let (grant, audience) = checked.ok_or(INVALID_GRANT)?;
    // A revocation since the check comes from a concurrent replay of this
    // code: this request won, and `issue_tokens` revokes what it issues.
    let scopes: Scopes = grant.scopes.iter().map(String::as_str).collect();
    issue_tokens(
        state,
        Issue {
            client,
            grant: &grant,
            grant_type: "authorization_code",
            scopes: &scopes,
            audience,
            nonce: code.nonce.as_deref(),
        },
    )
    .await
}

/// Checks an exchange against its unused code without changing anything:
/// the redirect URI, the PKCE verifier, that the grant is not revoked, and
/// the requested resource. Returns the code's grant and the audience of
/// the new access token. A mismatch is logged without the code or verifier.
async fn check_exchange(
    state: &AppState,
    code: &AuthorizationCodeRecord,
    exchange: &CodeExchange<'_>,
) -> Result<(GrantRecord, Audience), OAuthError> {
    let client = exchange.client;
    // RFC 6749 section 4.1.3: the same redirect URI, byte for byte.
    if exchange.redirect_uri != Some(code.redirect_uri.as_str()) {
        tracing::info!(client_id = %client.client_id, "code exchange with another redirect_uri");
        return Err(INVALID_GRANT);
    }
    if let Err(error) = check_verifier(code.code_challenge.as_deref(), exchange.code_verifier) {
        tracing::info!(client_id = %client.client_id, "code exchange with a wrong code_verifier");
        return Err(error);
    }

    // A grant revoked since the code was issued (by the administrator or
    // the user) takes its unused code with it.
    let grant = state
        .store
        .grant(&code.grant_id)
        .await
        .map_err(|error| store_failed(&error, "grant lookup"))?
        .filter(|grant| grant.revoked_at.is_none())
        .ok_or(INVALID_GRANT)?;
    let audience = audience(state, client, &grant, exchange.resource).await?;
    Ok((grant, audience))
}

/// Checks a PKCE verifier (RFC 7636 section 4.6): 43 to 128 unreserved
/// characters whose S256 hash is the challenge. A code issued without a
/// challenge takes no verifier, so a verifier cannot stand in for a
/// challenge that was never sent (RFC 9700 section 4.8.2).
pub fn check_verifier(challenge: Option<&str>, verifier: Option<&str>) -> Result<(), OAuthError> {
    match (challenge, verifier) {
        (None, None) => Ok(()),
        (Some(challenge), Some(verifier)) if is_verifier(verifier) => {
            let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
            if bool::from(computed.as_bytes().ct_eq(challenge.as_bytes())) {
                Ok(())
            } else {
                Err(INVALID_GRANT)
            }
        }
        _ => Err(INVALID_GRANT),
    }
}

fn is_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn challenge_of(verifier: &str) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
    }

    #[test]
    fn rfc7636_example_pair_passes() {
        assert!(check_verifier(Some(CHALLENGE), Some(VERIFIER)).is_ok());
        assert!(check_verifier(None, None).is_ok());
    }

    #[test]
    fn malformed_verifiers_fail_even_when_they_hash_right() {
        let uuid = "123e4567-e89b-12d3-a456-426614174000";
        let long = "a".repeat(129);
        let slashed = format!("{}+/", "a".repeat(41));
        for verifier in ["a", uuid, long.as_str(), slashed.as_str()] {
            let challenge = challenge_of(verifier);
            assert!(
                check_verifier(Some(&challenge), Some(verifier)).is_err(),
                "{verifier}"
            );
        }
    }

    #[test]
    fn downgrade_and_missing_verifier_fail() {
        assert!(check_verifier(None, Some(VERIFIER)).is_err());
        assert!(check_verifier(Some(CHALLENGE), None).is_err());
        let other = "a".repeat(43);
        assert!(check_verifier(Some(CHALLENGE), Some(&other)).is_err());
    }
}
