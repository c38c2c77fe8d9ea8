//! Access tokens: an RFC 9068 JWT (`typ: at+jwt`) signed by Tessera, then
//! encrypted (see [`super::jwe`]) to the resource server it is meant for.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use josekit::jwk::Jwk;
use serde::{Deserialize, Serialize};

use super::jwe::{JweError, Recipient};
use crate::crypto::Digester;
use crate::store::access_tokens::AccessTokenKey;

/// JOSE `typ` of the inner JWT (RFC 9068 section 2.1).
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";

/// The claims of an access token (RFC 9068 section 2.2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AccessTokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub client_id: String,
    pub scope: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
}

/// The decisions a caller made about a token before it is minted.
pub struct AccessTokenRequest<'a> {
    pub issuer: &'a str,
    pub subject: &'a str,
    pub audience: &'a str,
    pub client_id: &'a str,
    pub scope: &'a str,
    pub lifetime: Duration,
    pub auth_time: Option<DateTime<Utc>>,
}

impl AccessTokenClaims {
    /// Claims with `iat` at the current second and a fresh `jti`. The
    /// `jti` is a UUID of version 7 (RFC 9562), which starts with the time
    /// in milliseconds, so new records go to the end of the store's `jti`
    /// index instead of a random page of it.
    pub fn new(request: &AccessTokenRequest<'_>, now: DateTime<Utc>) -> Self {
        let iat = now.timestamp();
        Self {
            iss: request.issuer.to_owned(),
            sub: request.subject.to_owned(),
            aud: request.audience.to_owned(),
            client_id: request.client_id.to_owned(),
            scope: request.scope.to_owned(),
            iat,
            exp: iat + request.lifetime.num_seconds(),
            jti: uuid::Uuid::now_v7().to_string(),
            auth_time: request.auth_time.map(|time| time.timestamp()),
        }
    }

    pub fn expires_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.exp, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

/// A failure to mint a token; both variants are server-side faults.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error("signing the access token failed: {0}")]
    Signing(String),
    #[error(transparent)]
    Encryption(#[from] JweError),
}

/// Signs the claims with `sign` (which receives the JOSE `typ` and the
/// JSON payload and returns a JWS in compact form), then encrypts the JWS
/// to `recipient`, with the `jti` replicated in the JWE header.
pub fn mint<E: std::fmt::Display>(
    claims: &AccessTokenClaims,
    sign: impl FnOnce(&str, &[u8]) -> Result<String, E>,
    recipient: &Jwk,
) -> Result<String, MintError> {
    mint_for(claims, sign, &Recipient::new(recipient)?)
}

/// Mints like [`mint`], with an encrypter built beforehand.
pub fn mint_for<E: std::fmt::Display>(
    claims: &AccessTokenClaims,
    sign: impl FnOnce(&str, &[u8]) -> Result<String, E>,
    recipient: &Recipient,
) -> Result<String, MintError> {
    let payload =
        serde_json::to_vec(claims).map_err(|error| MintError::Signing(error.to_string()))?;
    let jws =
        sign(ACCESS_TOKEN_TYPE, &payload).map_err(|error| MintError::Signing(error.to_string()))?;
    Ok(recipient.encrypt(&jws, Some(&claims.jti))?)
}

/// The JWE protected header's one member this module reads.
#[derive(Deserialize)]
struct HeaderJti {
    jti: Option<String>,
}

/// Returns the `jti` that [`mint_for`] replicated in the token's protected
/// header, read without decrypting the token. Returns `None` for tokens
/// minted before that, for strings that are no JWE, and for a `jti` other
/// than a lowercase hyphenated UUID, which keeps NUL (rejected by
/// PostgreSQL's `text`) out of the lookup. A header of any length is read,
/// because the `kid` it repeats has no limit in keys stored before
/// registration began to limit it.
pub fn header_jti(token: &str) -> Option<String> {
    let header = token.split('.').next()?;
    let json = URL_SAFE_NO_PAD.decode(header).ok()?;
    let jti = serde_json::from_slice::<HeaderJti>(&json).ok()?.jti?;
    let uuid = uuid::Uuid::try_parse(&jti).ok()?;
    (uuid.hyphenated().to_string() == jti).then_some(jti)
}

/// Builds the lookup key of a presented access token: the `jti` in its
/// header and the digest of the whole string. A record must match both,
/// so a forged header finds nothing.
pub fn record_key(token: &str, digester: &Digester) -> AccessTokenKey {
    AccessTokenKey {
        jti: header_jti(token),
        digest: digester.digest(token),
    }
}

#[cfg(test)]
mod tests {
    use josekit::jwk::alg::ec::{EcCurve, EcKeyPair};
    use josekit::jws::{JwsHeader, ES256};

    use super::*;
    use crate::tokens::jwe;

    fn request() -> AccessTokenRequest<'static> {
        AccessTokenRequest {
            issuer: "https://id.example.com",
            subject: "svc-1",
            audience: "https://api.example.com/",
            client_id: "svc-1",
            scope: "read",
            lifetime: Duration::minutes(10),
            auth_time: None,
        }
    }

    #[test]
    fn claims_follow_the_clock_and_lifetime() {
        let now = DateTime::from_timestamp(1_800_000_000, 999_000_000).unwrap();
        let claims = AccessTokenClaims::new(&request(), now);
        assert_eq!(claims.iat, 1_800_000_000);
        assert_eq!(claims.exp - claims.iat, 600);
        let jti = uuid::Uuid::parse_str(&claims.jti).unwrap();
        assert_eq!(jti.get_version_num(), 7);
        assert_eq!(claims.jti, jti.hyphenated().to_string());
        let json = serde_json::to_value(&claims).unwrap();
        assert!(json.get("auth_time").is_none());
    }

    #[test]
    fn minted_token_decrypts_to_signed_claims() {
        let signing = EcKeyPair::generate(EcCurve::P256).unwrap();
        let recipient = EcKeyPair::generate(EcCurve::P256).unwrap();
        let claims = AccessTokenClaims::new(&request(), Utc::now());
        let signer = ES256
            .signer_from_jwk(&signing.to_jwk_private_key())
            .unwrap();
        let token = mint(
            &claims,
            |typ, payload| {
                let mut header = JwsHeader::new();
                header.set_token_type(typ);
                header.set_key_id("sig-1");
                josekit::jws::serialize_compact(payload, &header, &signer)
            },
            &recipient.to_jwk_public_key(),
        )
        .unwrap();

        let inner = jwe::decrypt(&token, &recipient.to_jwk_private_key()).unwrap();
        let verifier = ES256
            .verifier_from_jwk(&signing.to_jwk_public_key())
            .unwrap();
        let (payload, header) = josekit::jws::deserialize_compact(&inner, &verifier).unwrap();
        assert_eq!(header.token_type(), Some("at+jwt"));
        let decoded: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(decoded, serde_json::to_value(&claims).unwrap());
        assert_eq!(header_jti(&token), Some(claims.jti));
    }

    #[test]
    fn later_claims_sort_after_earlier_ones() {
        let now = Utc::now();
        let jtis: Vec<String> = (0..100)
            .map(|_| AccessTokenClaims::new(&request(), now).jti)
            .collect();
        let mut sorted = jtis.clone();
        sorted.sort();
        assert_eq!(jtis, sorted);
    }

    #[test]
    fn header_jti_is_none_without_uuid() {
        let encode = |json: &str| URL_SAFE_NO_PAD.encode(json);
        let with_jti = |jti: &str| format!("{}.a.b.c.d", encode(&format!(r#"{{"jti":"{jti}"}}"#)));
        let uuid = "01934b6e-8f3a-7c41-9a2b-3c4d5e6f7a8b";
        let cases = [
            String::new(),
            "not a token".to_owned(),
            "%%%.a.b".to_owned(),
            format!("{}.a.b.c.d", encode(r#"{"alg":"ECDH-ES+A256KW"}"#)),
            format!("{}.a.b.c.d", encode(r#"{"jti":7}"#)),
            with_jti(&"x".repeat(2000)),
            with_jti("j-1"),
            with_jti(r"\u0000"),
            with_jti(&format!(r"{uuid}\u0000")),
            with_jti(&uuid.to_uppercase()),
            with_jti(&uuid.replace('-', "")),
            with_jti(&format!("{{{uuid}}}")),
        ];
        for token in &cases {
            assert_eq!(header_jti(token), None, "{token}");
        }
        assert_eq!(header_jti(&with_jti(uuid)).as_deref(), Some(uuid));
        let long_kid = format!(r#"{{"kid":"{}","jti":"{uuid}"}}"#, "k".repeat(5000));
        let long_header = format!("{}.a.b.c.d", encode(&long_kid));
        assert_eq!(header_jti(&long_header).as_deref(), Some(uuid));
    }

    /// Prints the cost of each signing algorithm, of building and reusing
    /// an encrypter per recipient key type, and of minting one token with a
    /// reused encrypter. Run with
    /// `cargo test --release --lib mint_cost -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement, not a check"]
    fn mint_cost() {
        use josekit::jwk::alg::rsa::RsaKeyPair;
        use josekit::jws::{JwsSigner, RS256};

        const ROUNDS: u32 = 500;
        let ec_signing = EcKeyPair::generate(EcCurve::P256).unwrap();
        let rsa_signing = RsaKeyPair::generate(2048).unwrap();
        let signers: Vec<(&str, Box<dyn JwsSigner>)> = vec![
            (
                "ES256",
                Box::new(
                    ES256
                        .signer_from_jwk(&ec_signing.to_jwk_key_pair())
                        .unwrap(),
                ),
            ),
            (
                "RS256",
                Box::new(
                    RS256
                        .signer_from_jwk(&rsa_signing.to_jwk_key_pair())
                        .unwrap(),
                ),
            ),
        ];
        let recipients = [
            (
                "ECDH-ES+A256KW",
                EcKeyPair::generate(EcCurve::P256)
                    .unwrap()
                    .to_jwk_public_key(),
            ),
            (
                "RSA-OAEP-256",
                RsaKeyPair::generate(2048).unwrap().to_jwk_public_key(),
            ),
        ];
        let claims = AccessTokenClaims::new(&request(), Utc::now());
        let payload = serde_json::to_vec(&claims).unwrap();
        for (signing_alg, signer) in &signers {
            let start = std::time::Instant::now();
            for _ in 0..ROUNDS {
                josekit::jws::serialize_compact(&payload, &JwsHeader::new(), signer.as_ref())
                    .unwrap();
            }
            let micros = start.elapsed().as_micros() / u128::from(ROUNDS);
            println!("{signing_alg} alone: {micros} us per signature");
        }
        for (key_management, recipient) in &recipients {
            let start = std::time::Instant::now();
            for _ in 0..ROUNDS {
                if recipient.key_type() == "RSA" {
                    josekit::jwe::RSA_OAEP_256
                        .encrypter_from_jwk(recipient)
                        .unwrap();
                } else {
                    josekit::jwe::ECDH_ES_A256KW
                        .encrypter_from_jwk(recipient)
                        .unwrap();
                }
            }
            let micros = start.elapsed().as_micros() / u128::from(ROUNDS);
            println!("{key_management} encrypter from JWK: {micros} us");
            let reused = Recipient::new(recipient).unwrap();
            let start = std::time::Instant::now();
            for _ in 0..ROUNDS {
                reused.encrypt("a.b.c", Some(&claims.jti)).unwrap();
            }
            let micros = start.elapsed().as_micros() / u128::from(ROUNDS);
            println!("{key_management} with a reused encrypter: {micros} us per encryption");
        }
        for (signing_alg, signer) in &signers {
            for (key_management, recipient) in &recipients {
                let reused = Recipient::new(recipient).unwrap();
                let start = std::time::Instant::now();
                for _ in 0..ROUNDS {
                    mint_for(
                        &claims,
                        |typ, payload| {
                            let mut header = JwsHeader::new();
                            header.set_token_type(typ);
                            header.set_key_id("sig-1");
                            josekit::jws::serialize_compact(payload, &header, signer.as_ref())
                        },
                        &reused,
                    )
                    .unwrap();
                }
                let micros = start.elapsed().as_micros() / u128::from(ROUNDS);
                println!("{signing_alg} + {key_management}: {micros} us per token");
            }
        }
    }
}
