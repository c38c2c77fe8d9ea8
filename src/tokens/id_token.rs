//! ID tokens (OIDC Core section 2): a JWT signed with the client's
//! algorithm, RS256 unless its registration names another.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256, Sha512};

use crate::keys::SigningAlg;
use crate::store::UserRecord;

/// The claims of an ID token. Profile and email claims appear when the
/// matching scope was granted and the user has a value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IdTokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at_hash: Option<String>,
    pub sid: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
    #[serde(flatten)]
    pub user: UserClaims,
}

/// Claims about the user, released by scope (OIDC Core section 5.4).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct UserClaims {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
}

impl UserClaims {
    /// Collects the claims about `user` that `scopes` release.
    pub fn for_scopes<'a>(user: &UserRecord, scopes: impl IntoIterator<Item = &'a str>) -> Self {
        let mut claims = Self::default();
        for scope in scopes {
            match scope {
                "profile" => {
                    claims.preferred_username = Some(user.username.clone());
                    claims.given_name.clone_from(&user.given_name);
                    claims.family_name.clone_from(&user.family_name);
                    let parts: Vec<&str> = [&user.given_name, &user.family_name]
                        .into_iter()
                        .flatten()
                        .map(String::as_str)
                        .collect();
                    if !parts.is_empty() {
                        claims.name = Some(parts.join(" "));
                    }
                }
                "email" => {
                    if let Some(email) = &user.email {
                        claims.email = Some(email.clone());
                        claims.email_verified = Some(user.email_verified);
                    }
                }
                _ => {}
            }
        }
        claims
    }
}

/// The inputs of one ID token.
pub struct IdTokenRequest<'a> {
    pub issuer: &'a str,
    pub subject: &'a str,
    pub client_id: &'a str,
    pub lifetime: Duration,
    pub auth_time: DateTime<Utc>,
    pub nonce: Option<&'a str>,
    pub access_token: Option<&'a str>,
    pub alg: SigningAlg,
    pub sid: &'a str,
    pub amr: &'a [String],
    pub user: UserClaims,
}

impl IdTokenClaims {
    pub fn new(request: IdTokenRequest<'_>, now: DateTime<Utc>) -> Self {
        let iat = now.timestamp();
        Self {
            iss: request.issuer.to_owned(),
            sub: request.subject.to_owned(),
            aud: request.client_id.to_owned(),
            exp: iat + request.lifetime.num_seconds(),
            iat,
            auth_time: request.auth_time.timestamp(),
            nonce: request.nonce.map(str::to_owned),
            at_hash: request
                .access_token
                .map(|token| token_hash(token, request.alg)),
            sid: request.sid.to_owned(),
            amr: request.amr.to_vec(),
            user: request.user,
        }
    }
}

/// `at_hash` (OIDC Core section 3.1.3.6): the left half of the hash of
/// the token's ASCII bytes, with the hash of the signing algorithm:
/// SHA-256 for the 256-bit algorithms, SHA-512 for Ed25519.
pub fn token_hash(token: &str, alg: SigningAlg) -> String {
    let digest: Vec<u8> = match alg {
        SigningAlg::EdDSA => Sha512::digest(token.as_bytes()).to_vec(),
        SigningAlg::RS256 | SigningAlg::ES256 | SigningAlg::PS256 => {
            Sha256::digest(token.as_bytes()).to_vec()
        }
    };
    URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_hash_matches_the_oidc_example() {
        // OIDC Core appendix A.3 (RS256).
        let token = "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y";
        assert_eq!(
            token_hash(token, SigningAlg::RS256),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
        assert_eq!(token_hash(token, SigningAlg::EdDSA).len(), 43);
    }

    #[test]
    fn claims_skip_absent_values() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let claims = IdTokenClaims::new(
            IdTokenRequest {
                issuer: "https://as.test",
                subject: "u1",
                client_id: "rp1",
                lifetime: Duration::minutes(60),
                auth_time: now - Duration::seconds(5),
                nonce: None,
                access_token: Some("token"),
                alg: SigningAlg::RS256,
                sid: "s1",
                amr: &[],
                user: UserClaims::default(),
            },
            now,
        );
        let json = serde_json::to_value(&claims).unwrap();
        assert!(json.get("nonce").is_none());
        assert!(json.get("email").is_none());
        assert_eq!(json["auth_time"], 1_799_999_995);
        assert_eq!(json["exp"], 1_800_003_600);
        assert!(json["at_hash"].is_string());
    }
}
