//! `id_token_hint` at the authorization endpoint (OIDC Core section
//! 3.1.2.1): an ID token Tessera issued to this client, naming the user
//! the client expects. An expired hint is still a hint.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::request::AuthorizeError;
use crate::keys::KeyRing;
use crate::server::AppState;
use crate::store::Client;

/// Longest `id_token_hint` read; longer ones are invalid.
pub const MAX_ID_TOKEN_HINT_BYTES: usize = 16 * 1024;

/// Returns the `sub` of a hint that Tessera signed for `client`, `None`
/// without a hint, and `invalid_request` for any other hint.
pub fn hint_subject(
    state: &AppState,
    client: &Client,
    hint: Option<&str>,
) -> Result<Option<String>, AuthorizeError> {
    let Some(hint) = hint else {
        return Ok(None);
    };
    let issuer = state.config.issuer.as_str();
    check_hint(
        &state.keys,
        issuer,
        state.clock.now(),
        &client.client_id,
        hint,
    )
    .map(Some)
}

/// Returns the `sub` of `hint` when a key in `keys` signed it at `now`
/// with `iss` equal to `issuer` and `aud` naming `client_id`.
pub fn check_hint(
    keys: &KeyRing,
    issuer: &str,
    now: DateTime<Utc>,
    client_id: &str,
    hint: &str,
) -> Result<String, AuthorizeError> {
    let invalid = || AuthorizeError::invalid_request("id_token_hint is not a valid ID token");
    if hint.len() > MAX_ID_TOKEN_HINT_BYTES {
        return Err(invalid());
    }
    let verified = keys.verify(hint, now).map_err(|_| invalid())?;
    let claims: Value = serde_json::from_slice(&verified.payload).map_err(|_| invalid())?;
    let for_client = match &claims["aud"] {
        Value::String(audience) => audience == client_id,
        Value::Array(audiences) => audiences.iter().any(|aud| *aud == *client_id),
        _ => false,
    };
    if claims["iss"] != issuer || !for_client {
        return Err(invalid());
    }
    match claims["sub"].as_str() {
        Some(subject) => Ok(subject.to_owned()),
        None => Err(invalid()),
    }
}
