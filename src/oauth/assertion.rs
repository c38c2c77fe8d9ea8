//! Claim checks for `private_key_jwt` client assertions (RFC 7523 section 3,
//! OIDC Core section 9), applied after the signature verified.
//!
//! Policy: an assertion lives at most [`MAX_LIFETIME`]: `exp` may be at most
//! that far ahead of now, and `exp - iat` at most that long when `iat` is
//! present. That bound is also how long its `jti` must be remembered.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value};

/// Longest accepted assertion lifetime.
pub const MAX_LIFETIME: Duration = Duration::minutes(5);

/// Longest accepted `jti`, so the replay store stays small.
pub const MAX_JTI_LEN: usize = 256;

/// The values an assertion must match.
pub struct AssertionContext<'a> {
    pub client_id: &'a str,
    /// Accepted audiences: the issuer and the token endpoint URL, both from
    /// configuration, never from request headers.
    pub audiences: &'a [String],
    pub now: DateTime<Utc>,
    pub clock_skew: Duration,
}

/// The parts of an accepted assertion the caller stores.
#[derive(Debug, PartialEq, Eq)]
pub struct AcceptedAssertion {
    pub jti: String,
    pub expires_at: DateTime<Utc>,
}

/// The reason an assertion was rejected. It is logged and never sent to
/// the client, which gets `invalid_client`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AssertionError {
    #[error("iss and sub must both equal the client id")]
    WrongIssuerOrSubject,
    #[error("aud must name the issuer or the token endpoint")]
    WrongAudience,
    #[error("exp is missing or not a number")]
    MissingExpiry,
    #[error("the assertion has expired")]
    Expired,
    #[error("the assertion lives longer than five minutes")]
    TooLong,
    #[error("iat or nbf lies in the future")]
    NotYetValid,
    #[error("jti is missing, empty or longer than 256 characters")]
    BadJti,
}

/// Checks the claims of a verified assertion.
pub fn check_claims(
    claims: &Map<String, Value>,
    context: &AssertionContext<'_>,
) -> Result<AcceptedAssertion, AssertionError> {
    let string = |name: &str| claims.get(name).and_then(Value::as_str);
    if string("iss") != Some(context.client_id) || string("sub") != Some(context.client_id) {
        return Err(AssertionError::WrongIssuerOrSubject);
    }
    if !audience_matches(claims.get("aud"), context.audiences) {
        return Err(AssertionError::WrongAudience);
    }

    let expires_at = timestamp(claims.get("exp")).ok_or(AssertionError::MissingExpiry)?;
    // Subtracting from `now`, since adding to an `exp` near the largest
    // instant chrono represents would overflow.
    if expires_at <= context.now - context.clock_skew {
        return Err(AssertionError::Expired);
    }
    if expires_at > context.now + MAX_LIFETIME + context.clock_skew {
        return Err(AssertionError::TooLong);
    }
    if let Some(value) = claims.get("iat") {
        let issued_at = timestamp(Some(value)).ok_or(AssertionError::NotYetValid)?;
        if issued_at > context.now + context.clock_skew {
            return Err(AssertionError::NotYetValid);
        }
        if expires_at - issued_at > MAX_LIFETIME {
            return Err(AssertionError::TooLong);
        }
    }
    if let Some(value) = claims.get("nbf") {
        let not_before = timestamp(Some(value)).ok_or(AssertionError::NotYetValid)?;
        if not_before > context.now + context.clock_skew {
            return Err(AssertionError::NotYetValid);
        }
    }

    let jti = string("jti").filter(|jti| !jti.is_empty() && jti.len() <= MAX_JTI_LEN);
    let jti = jti.ok_or(AssertionError::BadJti)?;
    Ok(AcceptedAssertion {
        jti: jti.to_owned(),
        expires_at,
    })
}

/// `aud` as a string or a one-element array naming an accepted audience.
fn audience_matches(aud: Option<&Value>, accepted: &[String]) -> bool {
    let single = match aud {
        Some(Value::String(text)) => Some(text.as_str()),
        Some(Value::Array(items)) if items.len() == 1 => items[0].as_str(),
        _ => None,
    };
    single.is_some_and(|audience| accepted.iter().any(|item| item == audience))
}

/// Reads a NumericDate (RFC 7519 section 2): seconds since the epoch.
fn timestamp(value: Option<&Value>) -> Option<DateTime<Utc>> {
    let seconds = value?.as_f64()?;
    if !seconds.is_finite() {
        return None;
    }
    DateTime::from_timestamp(seconds.floor() as i64, 0)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn audiences() -> Vec<String> {
        vec![
            "https://id.example.com".to_owned(),
            "https://id.example.com/token".to_owned(),
        ]
    }

    fn check(claims: Value) -> Result<AcceptedAssertion, AssertionError> {
        let audiences = audiences();
        let context = AssertionContext {
            client_id: "rp3",
            audiences: &audiences,
            now: DateTime::from_timestamp(NOW, 0).unwrap(),
            clock_skew: Duration::seconds(60),
        };
        let Value::Object(map) = claims else {
            panic!("claims must be an object");
        };
        check_claims(&map, &context)
    }

    fn valid() -> Value {
        json!({
            "iss": "rp3", "sub": "rp3", "aud": "https://id.example.com",
            "exp": NOW + 60, "iat": NOW, "jti": "j-1"
        })
    }

    fn with(member: &str, value: Value) -> Value {
        let mut claims = valid();
        claims[member] = value;
        claims
    }

    fn without(member: &str) -> Value {
        let mut claims = valid();
        claims.as_object_mut().unwrap().remove(member);
        claims
    }

    #[test]
    fn valid_assertion_is_accepted() {
        let accepted = check(valid()).unwrap();
        assert_eq!(accepted.jti, "j-1");
        assert_eq!(accepted.expires_at.timestamp(), NOW + 60);
    }

    #[test]
    fn token_endpoint_and_one_element_array_are_audiences() {
        assert!(check(with("aud", json!("https://id.example.com/token"))).is_ok());
        assert!(check(with("aud", json!(["https://id.example.com"]))).is_ok());
    }

    #[test]
    fn rejections() {
        use AssertionError::*;
        let cases = [
            (with("sub", json!("rp4")), WrongIssuerOrSubject),
            (without("iss"), WrongIssuerOrSubject),
            (with("sub", json!("some-user")), WrongIssuerOrSubject),
            (
                with(
                    "aud",
                    json!(["https://id.example.com", "https://evil.test"]),
                ),
                WrongAudience,
            ),
            (with("aud", json!("https://evil.test/token")), WrongAudience),
            (without("aud"), WrongAudience),
            (without("exp"), MissingExpiry),
            (with("exp", json!("soon")), MissingExpiry),
            (with("exp", json!(NOW - 61)), Expired),
            (with("exp", json!(NOW + 10 * 365 * 86_400)), TooLong),
            (
                json!({"iss": "rp3", "sub": "rp3", "aud": "https://id.example.com",
                    "exp": NOW + 3600, "jti": "j"}),
                TooLong,
            ),
            (with("iat", json!(NOW - 7200)), TooLong),
            (with("iat", json!(NOW + 600)), NotYetValid),
            (with("nbf", json!(NOW + 600)), NotYetValid),
            (without("jti"), BadJti),
            (with("jti", json!("")), BadJti),
            (with("jti", json!("x".repeat(257))), BadJti),
        ];
        for (claims, expected) in cases {
            assert_eq!(check(claims.clone()), Err(expected), "{claims}");
        }
    }

    #[test]
    fn exp_at_chrono_max_is_too_long() {
        // The last second chrono represents: adding the skew to it overflows.
        let last = DateTime::<Utc>::MAX_UTC.timestamp();
        assert_eq!(
            check(with("exp", json!(last))),
            Err(AssertionError::TooLong)
        );
        assert_eq!(
            check(with("exp", json!(last as f64 + 0.5))),
            Err(AssertionError::TooLong)
        );
    }

    #[test]
    fn skew_is_allowed_around_now() {
        assert!(check(with("exp", json!(NOW - 30))).is_ok());
        assert!(check(with("iat", json!(NOW + 30))).is_ok());
    }
}
