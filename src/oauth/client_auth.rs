//! Client authentication at the token, introspection and revocation
//! endpoints (RFC 6749 section 2.3, RFC 7523 section 3, OIDC Core section 9).
//!
//! A client must use the method it registered as
//! `token_endpoint_auth_method`. Every failure is `invalid_client` (401,
//! with the Basic challenge when the request used Basic) and writes one WARN
//! line with the client id (its first [`LOGGED_CLIENT_ID_CHARS`]
//! characters) and the reason, never the secret or assertion. Past
//! [`FAILURE_LOG`]'s cap, the lines are counted instead.
//!
//! `private_key_jwt` assertions are verified only with the client's
//! registered keys (inline `jwks` or its `jwks_uri`), picked by `kid`, for
//! an asymmetric algorithm from [`ASSERTION_ALGORITHMS`]. The `jwk`, `jku`,
//! `x5u` and `x5c` headers are never read (RFC 8725 section 3.10), and a
//! `crit` header is rejected. Accepted audiences come from the configured
//! issuer only. The `jti` is consumed atomically per client after every
//! other check passed, so one assertion authenticates exactly once.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::Duration;
use josekit::jwk::Jwk;
use josekit::jws::JwsVerifier;
use serde_json::{Map, Value};

use super::assertion::{check_claims, AcceptedAssertion, AssertionContext, AssertionError};
use super::credentials::PresentedCredentials;
use axum::http::HeaderMap;

use crate::http::error::{ErrorCode, OAuthError};
use crate::http::form::OAuthForm;
use crate::public_keys::{FetchError, KeyPurpose};
use crate::server::AppState;
use crate::store::{AuthMethod, Client, StoreError};
use crate::telemetry::log_budget::{clip, LogBudget};

/// The cap on failure lines per second, from all senders together, because
/// the rate limits bound each address's failures but not the addresses.
static FAILURE_LOG: LogBudget = LogBudget::new(20);

/// The number of characters of a presented `client_id` that a failure line
/// repeats. Generated ids are far shorter, so only made-up ids are clipped.
const LOGGED_CLIENT_ID_CHARS: usize = 80;

/// JWS algorithms accepted on client assertions: asymmetric ones only, so
/// no `none` and no HMAC keyed with a public key (RFC 8725 section 3.1).
pub const ASSERTION_ALGORITHMS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// Reason for a failed authentication. It is only logged, and the client
/// gets `invalid_client`.
#[derive(Debug, thiserror::Error)]
pub enum AuthFailure {
    #[error("unknown client")]
    UnknownClient,
    #[error("the client is registered for {registered}, not {presented}")]
    WrongMethod {
        registered: &'static str,
        presented: &'static str,
    },
    #[error("a public client may not use this endpoint")]
    PublicClient,
    #[error("the client secret does not match")]
    WrongSecret,
    #[error("the assertion is not a JWS in compact serialization")]
    MalformedAssertion,
    #[error("the assertion algorithm is not allowed")]
    AlgorithmNotAllowed,
    #[error("the assertion has a crit header")]
    CriticalHeader,
    #[error("client_id does not match the assertion issuer")]
    ClientIdMismatch,
    #[error("no registered key verifies the assertion")]
    BadSignature,
    #[error("the client's JWK Set cannot be fetched: {0}")]
    KeySet(#[from] FetchError),
    #[error(transparent)]
    Claims(#[from] AssertionError),
    #[error("the assertion jti was already used")]
    Replayed,
}

/// A failed authentication, or a store failure on the way.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("client {client_id:?} failed authentication: {failure}")]
    Rejected {
        client_id: String,
        failure: AuthFailure,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AuthError {
    /// Returns whether no client with the presented id exists.
    pub fn is_unknown_client(&self) -> bool {
        matches!(
            self,
            AuthError::Rejected {
                failure: AuthFailure::UnknownClient,
                ..
            }
        )
    }

    /// Logs the failure once and returns the response error.
    pub fn into_oauth_error(self) -> OAuthError {
        match self {
            AuthError::Rejected { client_id, failure } => {
                if let Some(left_out) = FAILURE_LOG.admit() {
                    tracing::warn!(
                        client_id = ?clip(&client_id, LOGGED_CLIENT_ID_CHARS),
                        reason = %failure,
                        left_out,
                        "client authentication failed"
                    );
                }
                OAuthError::invalid_client()
            }
            AuthError::Store(error) => {
                tracing::error!(error = ?error, "client authentication failed on a store error");
                OAuthError::for_store(&error)
            }
        }
    }
}

impl From<AuthError> for OAuthError {
    fn from(error: AuthError) -> Self {
        error.into_oauth_error()
    }
}

/// Reads the credentials of a request. Missing or malformed credentials
/// are logged like any other failed authentication.
pub fn read_credentials(
    headers: &HeaderMap,
    form: &OAuthForm,
) -> Result<PresentedCredentials, OAuthError> {
    PresentedCredentials::from_request(headers, form).inspect_err(|error| {
        if error.code != ErrorCode::InvalidClient {
            return;
        }
        if let Some(left_out) = FAILURE_LOG.admit() {
            tracing::warn!(
                reason = "credentials are missing or malformed",
                left_out,
                "client authentication failed"
            );
        }
    })
}

/// Reads the credentials of a request and authenticates its client.
pub async fn authenticate_request(
    state: &AppState,
    headers: &HeaderMap,
    form: &OAuthForm,
) -> Result<Arc<Client>, OAuthError> {
    let presented = read_credentials(headers, form)?;
    Ok(authenticate(state, &presented).await?)
}

/// Authenticates the client behind `presented` by its registered method.
pub async fn authenticate(
    state: &AppState,
    presented: &PresentedCredentials,
) -> Result<Arc<Client>, AuthError> {
    let basic = presented.is_basic();
    let reject = |client_id: &str, failure: AuthFailure| AuthError::Rejected {
        client_id: client_id.to_owned(),
        failure,
    };
    match presented {
        PresentedCredentials::Basic { client_id, secret }
        | PresentedCredentials::Post { client_id, secret } => {
            let method = if basic {
                AuthMethod::ClientSecretBasic
            } else {
                AuthMethod::ClientSecretPost
            };
            let client = registered_client(state, client_id, method)
                .await?
                .map_err(|failure| reject(client_id, failure))?;
            if !crate::clients::verify_secret(&client, secret.expose(), &state.data_keys.digester) {
                return Err(reject(client_id, AuthFailure::WrongSecret));
            }
            Ok(client)
        }
        PresentedCredentials::PublicClient { client_id } => {
            registered_client(state, client_id, AuthMethod::None)
                .await?
                .map_err(|failure| reject(client_id, failure))
        }
        PresentedCredentials::Assertion {
            client_id,
            assertion,
        } => authenticate_assertion(state, client_id.as_deref(), assertion).await,
    }
}

/// Looks up the client `client_id` and checks that it registered `method`.
async fn registered_client(
    state: &AppState,
    client_id: &str,
    method: AuthMethod,
) -> Result<Result<Arc<Client>, AuthFailure>, StoreError> {
    let Some(client) = state.registry.client(client_id).await? else {
        return Ok(Err(AuthFailure::UnknownClient));
    };
    if client.auth_method != method {
        return Ok(Err(AuthFailure::WrongMethod {
            registered: client.auth_method.as_str(),
            presented: method.as_str(),
        }));
    }
    Ok(Ok(client))
}

async fn authenticate_assertion(
    state: &AppState,
    body_client_id: Option<&str>,
    assertion: &str,
) -> Result<Arc<Client>, AuthError> {
    let parts = match split_assertion(assertion) {
        Ok(parts) => parts,
        Err(failure) => {
            let client_id = body_client_id.unwrap_or("-");
            return Err(AuthError::Rejected {
                client_id: client_id.to_owned(),
                failure,
            });
        }
    };
    // The issuer read before verification only selects the client; the
    // claim checks below require `iss` and `sub` to equal its id.
    let client_id = match assertion_client_id(body_client_id, parts.unverified_issuer.as_deref()) {
        Ok(id) => id.to_owned(),
        Err(failure) => {
            return Err(AuthError::Rejected {
                client_id: body_client_id.unwrap_or("-").to_owned(),
                failure,
            })
        }
    };
    let reject = |failure: AuthFailure| AuthError::Rejected {
        client_id: client_id.clone(),
        failure,
    };

    let client = registered_client(state, &client_id, AuthMethod::PrivateKeyJwt)
        .await?
        .map_err(reject)?;
    let keys = match signature_keys(state, &client, parts.kid.as_deref()).await {
        Ok(keys) => keys,
        Err(error) => return Err(reject(AuthFailure::KeySet(error))),
    };
    let issuer = state.config.issuer.clone();
    let audiences = [issuer.clone(), format!("{issuer}/token")];
    let now = state.clock.now();
    let skew = Duration::from_std(state.config.tokens.clock_skew.as_duration())
        .unwrap_or_else(|_| Duration::seconds(60));
    let context = AssertionContext {
        client_id: &client.client_id,
        audiences: &audiences,
        now,
        clock_skew: skew,
    };
    let accepted = verify_assertion(assertion, &parts.alg, &keys, &context).map_err(reject)?;

    let fresh = state
        .store
        .consume_assertion_jti(&client.client_id, &accepted.jti, accepted.expires_at, now)
        .await?;
    if !fresh {
        return Err(reject(AuthFailure::Replayed));
    }
    Ok(client)
}

/// Picks the client an assertion names: the body's `client_id`, which must
/// then equal the unverified `iss`, else that `iss`, else `-`, which names
/// no client.
pub(crate) fn assertion_client_id<'a>(
    body_client_id: Option<&'a str>,
    unverified_issuer: Option<&'a str>,
) -> Result<&'a str, AuthFailure> {
    match (body_client_id, unverified_issuer) {
        (Some(id), Some(issuer)) if id != issuer => Err(AuthFailure::ClientIdMismatch),
        (Some(id), _) | (None, Some(id)) => Ok(id),
        (None, None) => Ok("-"),
    }
}

/// Verifies the signature of `assertion` with one of `keys` and checks its
/// claims; returns the `jti` to consume.
pub(crate) fn verify_assertion(
    assertion: &str,
    alg: &str,
    keys: &[Map<String, Value>],
    context: &AssertionContext<'_>,
) -> Result<AcceptedAssertion, AuthFailure> {
    let payload = verify_with_any(assertion, alg, keys).ok_or(AuthFailure::BadSignature)?;
    let claims: Map<String, Value> =
        serde_json::from_slice(&payload).map_err(|_| AuthFailure::MalformedAssertion)?;
    Ok(check_claims(&claims, context)?)
}

/// Members of an assertion's header and payload, read before verification.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct AssertionParts {
    pub alg: String,
    pub kid: Option<String>,
    pub unverified_issuer: Option<String>,
}

/// Reads the header and the `iss` claim without verifying anything, and
/// applies the header rules: three parts, an allowed `alg`, no `crit`.
pub(crate) fn split_assertion(assertion: &str) -> Result<AssertionParts, AuthFailure> {
    let mut parts = assertion.split('.');
    let (Some(header), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthFailure::MalformedAssertion);
    };
    let header = decode_object(header).ok_or(AuthFailure::MalformedAssertion)?;
    let payload = decode_object(payload).ok_or(AuthFailure::MalformedAssertion)?;
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !ASSERTION_ALGORITHMS.contains(&alg) {
        return Err(AuthFailure::AlgorithmNotAllowed);
    }
    if header.contains_key("crit") {
        return Err(AuthFailure::CriticalHeader);
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(AuthFailure::MalformedAssertion),
    };
    Ok(AssertionParts {
        alg: alg.to_owned(),
        kid,
        unverified_issuer: payload
            .get("iss")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

fn decode_object(part: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// Returns the client's signature keys that match `kid` (all of them
/// without one).
async fn signature_keys(
    state: &AppState,
    client: &Client,
    kid: Option<&str>,
) -> Result<Vec<Map<String, Value>>, FetchError> {
    if let Some(set) = &client.jwks {
        return Ok(inline_keys(set, kid));
    }
    match &client.jwks_uri {
        Some(url) => {
            state
                .registry
                .key_sets()
                .candidates(url, KeyPurpose::Signature, kid)
                .await
        }
        None => Ok(Vec::new()),
    }
}

/// Keys of an inline JWK Set that may verify signatures and match `kid`.
pub(crate) fn inline_keys(set: &Value, kid: Option<&str>) -> Vec<Map<String, Value>> {
    let keys = set.get("keys").and_then(Value::as_array);
    keys.into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .filter(|key| key.get("use").and_then(Value::as_str).unwrap_or("sig") == "sig")
        .filter(|key| kid.is_none() || key.get("kid").and_then(Value::as_str) == kid)
        .cloned()
        .collect()
}

/// Verifies `assertion` with the first key that accepts it for `alg`;
/// returns the payload. A key whose own `alg` differs is skipped.
fn verify_with_any(assertion: &str, alg: &str, keys: &[Map<String, Value>]) -> Option<Vec<u8>> {
    keys.iter().find_map(|key| {
        if key
            .get("alg")
            .and_then(Value::as_str)
            .is_some_and(|key_alg| key_alg != alg)
        {
            return None;
        }
        // The candidates were already matched on `kid`. josekit would also
        // demand a `kid` header whenever the key has one, which fails an
        // assertion that leaves `kid` out, as RFC 7515 allows.
        let mut key = key.clone();
        key.remove("kid");
        let jwk = Jwk::from_map(key).ok()?;
        let verifier = verifier_for(alg, &jwk)?;
        josekit::jws::deserialize_compact(assertion, verifier.as_ref())
            .ok()
            .map(|(payload, _)| payload)
    })
}

/// Builds a verifier for one allowed algorithm, or `None` when the key does
/// not fit it.
fn verifier_for(alg: &str, jwk: &Jwk) -> Option<Box<dyn JwsVerifier>> {
    use josekit::jws;
    let verifier: Box<dyn JwsVerifier> = match alg {
        "RS256" => Box::new(jws::RS256.verifier_from_jwk(jwk).ok()?),
        "RS384" => Box::new(jws::RS384.verifier_from_jwk(jwk).ok()?),
        "RS512" => Box::new(jws::RS512.verifier_from_jwk(jwk).ok()?),
        "PS256" => Box::new(jws::PS256.verifier_from_jwk(jwk).ok()?),
        "PS384" => Box::new(jws::PS384.verifier_from_jwk(jwk).ok()?),
        "PS512" => Box::new(jws::PS512.verifier_from_jwk(jwk).ok()?),
        "ES256" => Box::new(jws::ES256.verifier_from_jwk(jwk).ok()?),
        "ES384" => Box::new(jws::ES384.verifier_from_jwk(jwk).ok()?),
        "EdDSA" => {
            // Registration rejects such keys, but keys stored by an older
            // version reach this point unchecked.
            crate::public_keys::check_ed25519_point(jwk.as_ref()).ok()?;
            Box::new(jws::EdDSA.verifier_from_jwk(jwk).ok()?)
        }
        _ => return None,
    };
    Some(verifier)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn assertion_without_kid_matches_key_with_kid() {
        let private = Jwk::generate_ec_key(josekit::jwk::alg::ec::EcCurve::P256).unwrap();
        let mut public = private.to_public_key().unwrap();
        public.set_key_id("client-key-1");
        let signer = josekit::jws::ES256.signer_from_jwk(&private).unwrap();
        let mut header = josekit::jws::JwsHeader::new();
        header.set_token_type("JWT");
        let assertion = josekit::jws::serialize_compact(b"{}", &header, &signer).unwrap();
        let keys = [public.as_ref().clone()];
        assert_eq!(
            verify_with_any(&assertion, "ES256", &keys).as_deref(),
            Some(&b"{}"[..])
        );
    }

    #[test]
    fn ed25519_identity_key_gets_no_verifier() {
        let good = Jwk::generate_ed_key(josekit::jwk::alg::ed::EdCurve::Ed25519)
            .unwrap()
            .to_public_key()
            .unwrap();
        assert!(verifier_for("EdDSA", &good).is_some());
        let mut identity = good.clone();
        // The identity point (0, 1) encodes as y = 1.
        let mut x = [0u8; 32];
        x[0] = 1;
        identity
            .set_parameter("x", Some(json!(URL_SAFE_NO_PAD.encode(x))))
            .unwrap();
        assert!(verifier_for("EdDSA", &identity).is_none());
    }

    fn encode(value: &Value) -> String {
        URL_SAFE_NO_PAD.encode(value.to_string())
    }

    fn token(header: &Value, payload: &Value) -> String {
        format!("{}.{}.c2ln", encode(header), encode(payload))
    }

    #[test]
    fn header_rules() {
        let payload = json!({ "iss": "rp3" });
        let accepted = split_assertion(&token(&json!({"alg": "ES256", "kid": "k"}), &payload));
        assert_eq!(
            accepted.unwrap(),
            AssertionParts {
                alg: "ES256".into(),
                kid: Some("k".into()),
                unverified_issuer: Some("rp3".into()),
            }
        );
        let rejected = [
            json!({"alg": "none"}),
            json!({"alg": "NONE"}),
            json!({"alg": "HS256"}),
            json!({"alg": "XS512"}),
            json!({"alg": null}),
            json!({"alg": 42}),
            json!({"alg": ["ES256"]}),
            json!({"alg": ""}),
            json!({}),
            json!([]),
            json!({"alg": "ES256", "crit": ["exp"]}),
            json!({"alg": "ES256", "kid": 7}),
        ];
        for header in rejected {
            assert!(
                split_assertion(&token(&header, &payload)).is_err(),
                "{header}"
            );
        }
    }

    #[test]
    fn structure_rules() {
        let good = token(&json!({"alg": "ES256"}), &json!({}));
        for broken in [
            "a.b".to_owned(),
            format!("{good}.d"),
            format!("{good}.d.e.f"),
            good.replacen('.', "=.", 1),
            good.replacen('.', " .", 1),
            "!!.??.**".to_owned(),
            format!("{}.e30.c2ln", URL_SAFE_NO_PAD.encode("not json")),
        ] {
            assert!(split_assertion(&broken).is_err(), "{broken}");
        }
    }

    #[test]
    fn inline_keys_filter_by_kid_and_use() {
        let set = json!({ "keys": [
            { "kty": "EC", "kid": "a" },
            { "kty": "EC", "kid": "b", "use": "enc" },
            { "kty": "EC", "kid": "c", "use": "sig" },
        ]});
        let kids = |kid| -> Vec<String> {
            inline_keys(&set, kid)
                .iter()
                .map(|key| key["kid"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(kids(None), ["a", "c"]);
        assert_eq!(kids(Some("c")), ["c"]);
        assert!(kids(Some("b")).is_empty());
    }

    #[test]
    fn hmac_with_public_key_never_verifies() {
        let pair = josekit::jwk::alg::ec::EcKeyPair::generate(josekit::jwk::alg::ec::EcCurve::P256)
            .unwrap();
        let public = pair.to_jwk_public_key();
        let secret = public.to_string();
        let signer = josekit::jws::HS256
            .signer_from_bytes(secret.as_bytes())
            .unwrap();
        let mut header = josekit::jws::JwsHeader::new();
        header.set_token_type("JWT");
        let forged = josekit::jws::serialize_compact(b"{}", &header, &signer).unwrap();
        let keys = vec![public.as_ref().clone()];
        assert!(verify_with_any(&forged, "HS256", &keys).is_none());
        assert!(verify_with_any(&forged, "ES256", &keys).is_none());
    }
}
