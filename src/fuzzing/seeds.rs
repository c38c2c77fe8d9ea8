//! Valid inputs for every fuzz target, made with the real minting code and
//! the fixture's keys, and the generator of those test keys.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use chrono::Duration;
use josekit::jwk::alg::ec::EcCurve;
use josekit::jwk::Jwk;
use josekit::jws::{self, JwsHeader, JwsSigner};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::{json, Value};

use super::fixture::{
    now, Fixture, FixtureKeys, CODE_CHALLENGE, CODE_VERIFIER, ISSUER, JWT_CLIENT, NOW,
    REDIRECT_URIS, RESOURCE, WEB_CLIENT, WEB_CLIENT_SECRET,
};
use crate::keys::generate::generate;
use crate::keys::{EncryptionAlg, KeyAlg, SigningAlg};
use crate::oauth::credentials::JWT_BEARER_ASSERTION;
use crate::tokens::access::{mint, AccessTokenClaims, AccessTokenRequest};

/// One corpus file: the target's folder, a file name and the input.
pub struct Seed {
    pub target: &'static str,
    pub name: String,
    pub bytes: Vec<u8>,
    /// Whether the target's entry point accepts the input.
    pub accepted: bool,
}

impl Seed {
    fn new(target: &'static str, name: &str, bytes: impl Into<Vec<u8>>) -> Self {
        Self {
            target,
            name: name.to_owned(),
            bytes: bytes.into(),
            accepted: true,
        }
    }

    fn rejected(self) -> Self {
        Self {
            accepted: false,
            ..self
        }
    }
}

/// Generates fresh test keys as the JSON text of [`FixtureKeys`]: RS256,
/// ES256 and ECDH-ES+A256KW keys for Tessera, ES256 and PS256 keys for the
/// `private_key_jwt` client.
pub fn generate_keys() -> anyhow::Result<String> {
    let server = [
        KeyAlg::Signing(SigningAlg::RS256),
        KeyAlg::Signing(SigningAlg::ES256),
        KeyAlg::Encryption(EncryptionAlg::EcdhEsA256kw),
    ]
    .into_iter()
    .map(|alg| {
        Ok(Value::Object(
            generate(alg, 2048)?.private_jwk.as_ref().clone(),
        ))
    })
    .collect::<anyhow::Result<Vec<Value>>>()?;
    let mut ec = Jwk::generate_ec_key(EcCurve::P256)?;
    ec.set_key_id("client-es256");
    ec.set_algorithm("ES256");
    let mut rsa = Jwk::generate_rsa_key(2048)?;
    rsa.set_key_id("client-ps256");
    rsa.set_algorithm("PS256");
    let client = [ec, rsa]
        .into_iter()
        .map(|key| Value::Object(key.as_ref().clone()))
        .collect();
    Ok(serde_json::to_string_pretty(&FixtureKeys {
        server,
        client,
    })?)
}

/// Returns valid inputs for every target, and a few near misses.
pub fn seeds(fixture: &Fixture) -> anyhow::Result<Vec<Seed>> {
    let mut seeds = Vec::new();
    let id_token = sign_id_token(fixture, SigningAlg::RS256, json!(WEB_CLIENT))?;
    seeds.extend(authorize_seeds(&id_token));
    let es256 = assertion(fixture, 0, json!(ISSUER))?;
    let ps256 = assertion(fixture, 1, json!([format!("{ISSUER}/token")]))?;
    seeds.extend(token_seeds(&es256));
    seeds.push(Seed::new("client_assertion", "es256", es256.as_str()));
    seeds.push(Seed::new("client_assertion", "ps256", ps256.as_str()));
    seeds.extend(claims_seeds());
    let access_token = access_token(fixture)?;
    seeds.push(Seed::new(
        "bearer_token",
        "valid",
        format!("Bearer {access_token}"),
    ));
    seeds.push(Seed::new(
        "bearer_token",
        "lower-case-scheme",
        format!("bearer {access_token}"),
    ));
    seeds.push(Seed::new("id_token_hint", "rs256", id_token.as_str()));
    let es256_hint = sign_id_token(fixture, SigningAlg::ES256, json!([WEB_CLIENT]))?;
    seeds.push(Seed::new("id_token_hint", "es256-aud-array", es256_hint));
    seeds.extend(registration_seeds(fixture));
    Ok(seeds)
}

fn authorize_seeds(id_token: &str) -> Vec<Seed> {
    let encode = |text: &str| utf8_percent_encode(text, NON_ALPHANUMERIC).to_string();
    let base = format!(
        "response_type=code&client_id={WEB_CLIENT}&redirect_uri={}&code_challenge={CODE_CHALLENGE}&code_challenge_method=S256",
        encode(REDIRECT_URIS[0])
    );
    let loopback = base.replace(
        &encode(REDIRECT_URIS[0]),
        &encode("http://127.0.0.1:51234/callback"),
    );
    vec![
        Seed::new(
            "authorize_request",
            "openid",
            format!("{base}&scope=openid+profile+email&state=af0ifjsldkj&nonce=n-0S6_WzA2Mj"),
        ),
        Seed::new(
            "authorize_request",
            "form-post-prompt",
            format!("{base}&scope=openid%20offline_access&response_mode=form_post&prompt=login%20consent&max_age=300&login_hint=alice"),
        ),
        Seed::new(
            "authorize_request",
            "loopback-port",
            format!("{loopback}&scope=calendar.read&resource={}", encode(RESOURCE)),
        ),
        Seed::new(
            "authorize_request",
            "id-token-hint",
            format!("{base}&scope=openid&prompt=none&id_token_hint={id_token}"),
        ),
        Seed::new(
            "authorize_request",
            "repeated-state",
            format!("{base}&scope=openid&state=a&state=b"),
        )
        .rejected(),
    ]
}

fn token_seeds(assertion: &str) -> Vec<Seed> {
    let basic = STANDARD.encode(format!("{WEB_CLIENT}:{WEB_CLIENT_SECRET}"));
    let redirect_uri = utf8_percent_encode(REDIRECT_URIS[0], NON_ALPHANUMERIC);
    let resource = utf8_percent_encode(RESOURCE, NON_ALPHANUMERIC);
    vec![
        Seed::new(
            "token_request",
            "authorization-code",
            format!("Basic {basic}\ngrant_type=authorization_code&code=SplxlOBeZQQYbYS6WxSbIA&redirect_uri={redirect_uri}&code_verifier={CODE_VERIFIER}"),
        ),
        Seed::new(
            "token_request",
            "refresh-token",
            format!("Basic {basic}\ngrant_type=refresh_token&refresh_token=tGzv3JOkF0XG5Qx2TlKWIA&scope=openid"),
        ),
        Seed::new(
            "token_request",
            "client-secret-post",
            format!("\ngrant_type=refresh_token&refresh_token=t&client_id={WEB_CLIENT}&client_secret={WEB_CLIENT_SECRET}"),
        )
        .rejected(),
        Seed::new(
            "token_request",
            "private-key-jwt",
            format!("\ngrant_type=client_credentials&scope=calendar.read&resource={resource}&client_assertion_type={}&client_assertion={assertion}",
                utf8_percent_encode(JWT_BEARER_ASSERTION, NON_ALPHANUMERIC)),
        ),
    ]
}

fn claims_seeds() -> Vec<Seed> {
    let valid = assertion_claims(0, json!(ISSUER));
    let mut float_times = valid.clone();
    float_times["exp"] = json!(NOW as f64 + 30.5);
    float_times["nbf"] = json!(NOW as f64 - 0.5);
    let mut expired = valid.clone();
    expired["exp"] = json!(NOW - 3600);
    vec![
        Seed::new("assertion_claims", "valid", valid.to_string()),
        Seed::new("assertion_claims", "float-times", float_times.to_string()),
        Seed::new("assertion_claims", "expired", expired.to_string()).rejected(),
    ]
}

fn registration_seeds(fixture: &Fixture) -> Vec<Seed> {
    let public_keys: Vec<Value> = fixture
        .client_keys
        .iter()
        .filter_map(|key| crate::keys::generate::public_jwk(key).ok())
        .map(|key| Value::Object(key.as_ref().clone()))
        .collect();
    let bodies = [
        (
            "web",
            json!({
                "client_name": "Calendar Sync",
                "redirect_uris": ["https://rp.example.com/callback"],
                "post_logout_redirect_uris": ["https://rp.example.com/signed-out"],
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "scope": "openid profile email offline_access",
                "token_endpoint_auth_method": "client_secret_basic",
                "id_token_signed_response_alg": "ES256"
            }),
        ),
        (
            "native",
            json!({
                "application_type": "native",
                "redirect_uris": ["http://127.0.0.1/callback", "com.example.app:/cb"],
                "token_endpoint_auth_method": "none"
            }),
        ),
        (
            "private-key-jwt",
            json!({
                "client_name": "Backend",
                "grant_types": ["client_credentials"],
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks": { "keys": public_keys },
                "scope": "calendar.read"
            }),
        ),
        (
            "jwks-uri",
            json!({
                "redirect_uris": ["https://rp.example.com/callback"],
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks_uri": "https://rp.example.com/jwks.json"
            }),
        ),
    ];
    bodies
        .into_iter()
        .map(|(name, body)| Seed::new("registration", name, body.to_string()))
        .collect()
}

/// Mints an access token for Tessera's own userinfo endpoint, as the
/// token endpoint does.
fn access_token(fixture: &Fixture) -> anyhow::Result<String> {
    let request = AccessTokenRequest {
        issuer: ISSUER,
        subject: "7f9c2ba4-e88f-4d2b-9d3f-4b1c4d0e5a61",
        audience: ISSUER,
        client_id: WEB_CLIENT,
        scope: "openid profile email",
        lifetime: Duration::minutes(10),
        auth_time: Some(now()),
    };
    let claims = AccessTokenClaims::new(&request, now());
    let recipient = fixture
        .keys
        .encryption_key(now())
        .ok_or_else(|| anyhow::anyhow!("the fixture has no encryption key"))?;
    let sign =
        |typ: &str, payload: &[u8]| fixture.keys.sign(SigningAlg::ES256, typ, payload, now());
    Ok(mint(&claims, sign, &recipient.public_jwk)?)
}

fn sign_id_token(fixture: &Fixture, alg: SigningAlg, audience: Value) -> anyhow::Result<String> {
    let claims = json!({
        "iss": ISSUER,
        "sub": "7f9c2ba4-e88f-4d2b-9d3f-4b1c4d0e5a61",
        "aud": audience,
        "exp": NOW + 600,
        "iat": NOW,
        "auth_time": NOW,
        "nonce": "n-0S6_WzA2Mj",
        "sid": "08a5019c-17e1-4977-8f42-65a12843ea02"
    });
    Ok(fixture
        .keys
        .sign(alg, "JWT", claims.to_string().as_bytes(), now())?)
}

/// Signs a `private_key_jwt` assertion with the client key at `index`.
fn assertion(fixture: &Fixture, index: usize, audience: Value) -> anyhow::Result<String> {
    let key = fixture
        .client_keys
        .get(index)
        .ok_or_else(|| anyhow::anyhow!("the fixture has no client key {index}"))?;
    sign_assertion(
        key,
        assertion_claims(index, audience).to_string().as_bytes(),
    )
}

fn assertion_claims(index: usize, audience: Value) -> Value {
    json!({
        "iss": JWT_CLIENT,
        "sub": JWT_CLIENT,
        "aud": audience,
        "exp": NOW + 60,
        "iat": NOW,
        "jti": URL_SAFE_NO_PAD.encode(format!("{JWT_CLIENT}-{index}")),
    })
}

/// Signs `payload` with a client key (ES256, or PS256 for a key labelled
/// so), with its `kid` in the header.
pub(super) fn sign_assertion(key: &Jwk, payload: &[u8]) -> anyhow::Result<String> {
    let signer: Box<dyn JwsSigner> = match key.algorithm() {
        Some("PS256") => Box::new(jws::PS256.signer_from_jwk(key)?),
        _ => Box::new(jws::ES256.signer_from_jwk(key)?),
    };
    let mut header = JwsHeader::new();
    header.set_token_type("JWT");
    if let Some(kid) = key.key_id() {
        header.set_key_id(kid);
    }
    Ok(jws::serialize_compact(payload, &header, signer.as_ref())?)
}
