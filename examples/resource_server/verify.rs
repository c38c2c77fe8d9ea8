//! Verification of Tessera's access tokens: a JWE addressed to this server
//! that wraps a JWT signed by Tessera (RFC 9068 section 4).
//!
//! The claims are checked here rather than with josekit's `JwtPayloadValidator`,
//! which accepts a token without `aud` or `exp` and ignores `typ`.

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use josekit::jwe::{JweDecrypter, JweHeader};
use josekit::jws::JwsHeader;
use josekit::JoseError;
use serde::{Deserialize, Serialize};

use super::jwks::{KeyError, SigningKeys, SIGNING_ALGORITHMS};

/// Clock difference tolerated on `exp`, `nbf` and `iat`, in seconds.
/// josekit's own validator would reject an `iat` one second ahead.
pub const CLOCK_SKEW_SECONDS: i64 = 60;
/// Longer tokens are rejected before any cryptography. Tessera's are
/// about 1,100 bytes with its default ES256 key and a P-256 recipient.
const MAX_TOKEN_BYTES: usize = 8 * 1024;
const CONTENT_ENCRYPTION: &str = "A256GCM";

/// The reason a token was rejected. The messages are safe to send to the
/// client and contain nothing from the token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the access token is longer than {MAX_TOKEN_BYTES} bytes")]
    TooLong,
    #[error("the access token is not a JWE in compact form")]
    Malformed,
    #[error("the access token's JWE header is not accepted (`{0}`)")]
    JweHeader(&'static str),
    #[error("the access token does not decrypt with this server's key")]
    Decryption,
    #[error("the access token's JWS header is not accepted (`{0}`)")]
    JwsHeader(&'static str),
    #[error("the access token is signed with an unknown key")]
    UnknownKey,
    #[error("the access token's signature is invalid")]
    Signature,
    #[error("the access token's claims are malformed or incomplete")]
    Claims,
    #[error("the access token is from another issuer")]
    Issuer,
    #[error("the access token is for another resource server")]
    Audience,
    #[error("the access token has expired")]
    Expired,
    #[error("the access token is not valid yet")]
    NotYetValid,
    /// Tessera's JWK Set could not be fetched: a server-side failure.
    #[error("the issuer's signing keys are unavailable")]
    KeysUnavailable,
}

/// The `aud` claim: one string or an array of them.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, identifier: &str) -> bool {
        match self {
            Self::One(audience) => audience == identifier,
            Self::Many(audiences) => audiences.iter().any(|audience| audience == identifier),
        }
    }
}

/// The claims of an access token (RFC 9068 section 2.2).
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct AccessTokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: Audience,
    pub exp: i64,
    pub iat: i64,
    #[serde(default)]
    pub nbf: Option<i64>,
    pub client_id: String,
    pub jti: String,
    #[serde(default)]
    pub scope: String,
}

impl AccessTokenClaims {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.split(' ').any(|granted| granted == scope)
    }
}

/// Checks access tokens for one resource server and one issuer.
pub struct Verifier {
    issuer: String,
    audience: String,
    decrypter: Box<dyn JweDecrypter>,
    /// The one key-management algorithm Tessera uses with this key type.
    key_management: &'static str,
    signing_keys: SigningKeys,
}

impl Verifier {
    pub fn new(
        issuer: String,
        audience: String,
        decrypter: Box<dyn JweDecrypter>,
        key_management: &'static str,
        signing_keys: SigningKeys,
    ) -> Self {
        Self {
            issuer,
            audience,
            decrypter,
            key_management,
            signing_keys,
        }
    }

    /// Decrypts `token`, verifies its signature with the issuer's key named
    /// by `kid`, and checks its claims at `now`.
    pub async fn verify(
        &self,
        token: &str,
        now: SystemTime,
    ) -> Result<AccessTokenClaims, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLong);
        }
        if token.split('.').count() != 5 {
            return Err(TokenError::Malformed);
        }
        let jws = self.decrypt(token)?;

        let header = jws_header(&jws)?;
        let alg = header.algorithm().unwrap_or_default();
        if !SIGNING_ALGORITHMS.contains(&alg) {
            return Err(TokenError::JwsHeader("alg"));
        }
        if !is_access_token_type(header.token_type()) {
            return Err(TokenError::JwsHeader("typ"));
        }
        let kid = header.key_id().ok_or(TokenError::JwsHeader("kid"))?;
        let verifier = self
            .signing_keys
            .verifier(kid)
            .await
            .map_err(|error| match error {
                KeyError::UnknownKid => TokenError::UnknownKey,
                KeyError::Unavailable => TokenError::KeysUnavailable,
            })?;
        // josekit checks that the header's `alg` and `kid` are the key's.
        let (payload, _) = josekit::jws::deserialize_compact(&jws, verifier.as_ref())
            .map_err(|_| TokenError::Signature)?;

        let claims: AccessTokenClaims =
            serde_json::from_slice(&payload).map_err(|_| TokenError::Claims)?;
        self.check_claims(&claims, now)?;
        Ok(claims)
    }

    /// Opens the JWE after checking its header: the key-management
    /// algorithm of this server's key, `A256GCM`, no compression (josekit
    /// would inflate it before anything is checked), and `cty: JWT`.
    fn decrypt(&self, token: &str) -> Result<String, TokenError> {
        // josekit 0.10.3 panics on an ECDH-ES+A256KW encrypted key shorter
        // than 8 bytes. A wrapped A256GCM key is always 40 bytes.
        let encrypted_key = token.split('.').nth(1).unwrap_or_default();
        let wrapped_key_bytes = URL_SAFE_NO_PAD.decode(encrypted_key).map(|key| key.len());
        let key_fits = self.key_management != "ECDH-ES+A256KW" || wrapped_key_bytes == Ok(40);
        let rejected = Cell::new(None);
        let outcome = josekit::jwe::deserialize_compact_with_selector(token, |header| {
            match self.check_jwe_header(header) {
                Ok(()) if key_fits => Ok(Some(self.decrypter.as_ref())),
                Ok(()) => Err(JoseError::InvalidJweFormat(anyhow::anyhow!(
                    "the encrypted key is not 40 bytes"
                ))),
                Err(member) => {
                    rejected.set(Some(member));
                    Err(JoseError::InvalidJweFormat(anyhow::anyhow!(
                        "JWE header not accepted"
                    )))
                }
            }
        });
        if let Some(member) = rejected.get() {
            return Err(TokenError::JweHeader(member));
        }
        let (payload, _) = outcome.map_err(|_| TokenError::Decryption)?;
        String::from_utf8(payload).map_err(|_| TokenError::Decryption)
    }

    fn check_jwe_header(&self, header: &JweHeader) -> Result<(), &'static str> {
        if header.algorithm() != Some(self.key_management) {
            return Err("alg");
        }
        if header.content_encryption() != Some(CONTENT_ENCRYPTION) {
            return Err("enc");
        }
        if header.compression().is_some() {
            return Err("zip");
        }
        // RFC 7519 section 5.2: `cty: JWT` marks a nested JWT; media types
        // compare case-insensitively.
        if !header
            .content_type()
            .is_some_and(|cty| cty.eq_ignore_ascii_case("JWT"))
        {
            return Err("cty");
        }
        Ok(())
    }

    fn check_claims(&self, claims: &AccessTokenClaims, now: SystemTime) -> Result<(), TokenError> {
        if claims.iss != self.issuer {
            return Err(TokenError::Issuer);
        }
        if !claims.aud.contains(&self.audience) {
            return Err(TokenError::Audience);
        }
        let now = now.duration_since(UNIX_EPOCH).map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        });
        if now >= claims.exp.saturating_add(CLOCK_SKEW_SECONDS) {
            return Err(TokenError::Expired);
        }
        let latest_start = now.saturating_add(CLOCK_SKEW_SECONDS);
        if claims.iat > latest_start || claims.nbf.is_some_and(|nbf| nbf > latest_start) {
            return Err(TokenError::NotYetValid);
        }
        Ok(())
    }
}

/// Decodes the protected header of a JWS in compact form without verifying
/// anything, to learn which key to verify it with.
fn jws_header(jws: &str) -> Result<JwsHeader, TokenError> {
    let encoded = jws.split('.').next().unwrap_or_default();
    let decoded = URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| TokenError::JwsHeader("header"))?;
    JwsHeader::from_bytes(&decoded).map_err(|_| TokenError::JwsHeader("header"))
}

/// Accepts `at+jwt` and `application/at+jwt` in any letter case (RFC 9068
/// section 4, RFC 7515 section 4.1.9).
fn is_access_token_type(typ: Option<&str>) -> bool {
    let Some(typ) = typ else {
        return false;
    };
    let typ = typ.to_ascii_lowercase();
    typ.strip_prefix("application/").unwrap_or(&typ) == "at+jwt"
}
