//! Entry points for the fuzz targets in `fuzz/` and for the test that
//! replays their corpus on the stable toolchain.
//!
//! Each function takes raw request bytes and runs the parsers and checks
//! of one endpoint, without HTTP or a store: the client, resource server
//! and key lookups go to a [`Fixture`] instead. Each returns whether the
//! input passed every check, so a test can tell that the seeds still
//! reach the code behind the parsers. A panic is a bug.

mod fixture;
mod seeds;

use axum::body::Bytes;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue};
use chrono::Duration;

pub use fixture::{
    now, Fixture, FixtureKeys, CODE_CHALLENGE, CODE_VERIFIER, ISSUER, JWT_CLIENT, NOW,
    REDIRECT_URIS, RESOURCE, WEB_CLIENT, WEB_CLIENT_SECRET,
};
pub use seeds::{generate_keys, seeds, Seed};

use crate::clients::{validate, ClientMetadata, Registrar};
use crate::http::form::OAuthForm;
use crate::oauth::assertion::AssertionContext;
use crate::oauth::authorize::hint::check_hint;
use crate::oauth::authorize::request::{check_request, client_id, response_target, Params};
use crate::oauth::authorize::{response, too_old};
use crate::oauth::client_auth::{
    assertion_client_id, inline_keys, split_assertion, verify_assertion,
};
use crate::oauth::credentials::PresentedCredentials;
use crate::oauth::grants::code::check_verifier;
use crate::oauth::resource::{check_target, grant_scopes, requested_resource};
use crate::oauth::scope::Scopes;
use crate::oidc::logout::{hint_audience, hint_claims};
use crate::oidc::userinfo::{bearer_token as read_bearer_token, open_own_token};
use crate::store::{AuthMethod, Client};
use crate::tokens::access::header_jti;

/// The fuzz targets, by the name of their corpus folder.
pub const TARGETS: [&str; 7] = [
    "authorize_request",
    "token_request",
    "client_assertion",
    "assertion_claims",
    "bearer_token",
    "id_token_hint",
    "registration",
];

/// Runs the entry point of `target`; `None` for an unknown target.
pub fn run(target: &str, fixture: &Fixture, input: &[u8]) -> Option<bool> {
    let accepted = match target {
        "authorize_request" => authorize_request(fixture, input),
        "token_request" => token_request(fixture, input),
        "client_assertion" => client_assertion(fixture, input),
        "assertion_claims" => assertion_claims(fixture, input),
        "bearer_token" => bearer_token(fixture, input),
        "id_token_hint" => id_token_hint(fixture, input),
        "registration" => registration(input),
        _ => return None,
    };
    Some(accepted)
}

/// `/authorize`: `input` is the query string. Runs the checks in the
/// endpoint's order, the `id_token_hint` and `max_age` checks, and renders
/// the response.
pub fn authorize_request(fixture: &Fixture, input: &[u8]) -> bool {
    let params = Params::parse(input);
    let Some(client) = client_id(&params).ok().and_then(|id| fixture.client(id)) else {
        return false;
    };
    let Ok(target) = response_target(&params, client) else {
        return false;
    };
    let request = match check_request(&params, client, target.clone()) {
        Ok(request) => request,
        Err(error) => {
            response::error(&target, ISSUER, error);
            return false;
        }
    };
    if let Some(hint) = request.id_token_hint.as_deref() {
        if let Err(error) = check_hint(&fixture.keys, ISSUER, now(), &client.client_id, hint) {
            response::error(&request.target, ISSUER, error);
            return false;
        }
    }
    // As if the user had signed in an hour before: `max_age` decides
    // whether the login is still fresh.
    too_old(&fixture.session, request.max_age, now());
    response::success(&request.target, ISSUER, "fuzz-code");
    true
}

/// `/token` (and the form and credentials of `/introspect` and `/revoke`):
/// `input` is the `Authorization` header value, a newline, then the form
/// body. An empty first line sends no header.
pub fn token_request(fixture: &Fixture, input: &[u8]) -> bool {
    let (header, body) = match input.iter().position(|byte| *byte == b'\n') {
        Some(at) => (&input[..at], &input[at + 1..]),
        None => (&b""[..], input),
    };
    let mut headers = HeaderMap::new();
    if !header.is_empty() {
        let Ok(value) = HeaderValue::from_bytes(header) else {
            return false;
        };
        headers.insert(AUTHORIZATION, value);
    }
    let Ok(form) = OAuthForm::parse(body) else {
        return false;
    };
    let Ok(presented) = PresentedCredentials::from_request(&headers, &form) else {
        return false;
    };
    let Some(client) = authenticate(fixture, &presented) else {
        return false;
    };
    match form.get("grant_type") {
        Some("client_credentials") => client_credentials(fixture, client, &form),
        Some("authorization_code") => {
            form.get("code").is_some()
                && form.get("redirect_uri") == Some(REDIRECT_URIS[0])
                && check_verifier(Some(CODE_CHALLENGE), form.get("code_verifier")).is_ok()
        }
        Some("refresh_token") => {
            let granted = Scopes::parse("openid offline_access").unwrap_or_default();
            form.get("refresh_token").is_some()
                && form
                    .get("scope")
                    .map(Scopes::parse)
                    .transpose()
                    .is_ok_and(|scopes| scopes.is_none_or(|scopes| scopes.is_subset(&granted)))
        }
        _ => false,
    }
}

/// Authenticates the client as `client_auth::authenticate` does, with the
/// fixture's clients.
fn authenticate<'a>(fixture: &'a Fixture, presented: &PresentedCredentials) -> Option<&'a Client> {
    let (client_id, method, secret) = match presented {
        PresentedCredentials::Assertion {
            client_id,
            assertion,
        } => return assertion_client(fixture, client_id.as_deref(), assertion),
        PresentedCredentials::Basic { client_id, secret } => {
            (client_id, AuthMethod::ClientSecretBasic, Some(secret))
        }
        PresentedCredentials::Post { client_id, secret } => {
            (client_id, AuthMethod::ClientSecretPost, Some(secret))
        }
        PresentedCredentials::PublicClient { client_id } => (client_id, AuthMethod::None, None),
    };
    let client = fixture
        .client(client_id)
        .filter(|client| client.auth_method == method)?;
    let secret_matches = secret.is_none_or(|secret| {
        crate::clients::verify_secret(client, secret.expose(), &fixture.digester)
    });
    secret_matches.then_some(client)
}

fn client_credentials(fixture: &Fixture, client: &Client, form: &OAuthForm) -> bool {
    let Ok(requested) = form.get("scope").map(Scopes::parse).transpose() else {
        return false;
    };
    let Ok(identifier) = requested_resource(client, form.get("resource")) else {
        return false;
    };
    let resource = (identifier == fixture.resource.identifier).then(|| fixture.resource.clone());
    let Ok(resource) = check_target(client, resource) else {
        return false;
    };
    grant_scopes(requested.as_ref(), client, &resource).is_ok()
}

/// `private_key_jwt`: `input` is the `client_assertion` parameter.
pub fn client_assertion(fixture: &Fixture, input: &[u8]) -> bool {
    let Ok(assertion) = std::str::from_utf8(input) else {
        return false;
    };
    assertion_client(fixture, None, assertion).is_some()
}

/// `private_key_jwt` with a payload the client chose: `input` is the JWS
/// payload, which is signed with the client's ES256 key and then checked
/// like any assertion. A registered client can send any claims, so the
/// checks behind the signature get fuzzed too.
pub fn assertion_claims(fixture: &Fixture, input: &[u8]) -> bool {
    let Some(key) = fixture.client_keys.first() else {
        return false;
    };
    let Ok(assertion) = seeds::sign_assertion(key, input) else {
        return false;
    };
    assertion_client(fixture, None, &assertion).is_some()
}

/// Returns the client that `assertion` authenticates, after the header
/// rules, the signature and the claim checks; the `jti` is not consumed.
fn assertion_client<'a>(
    fixture: &'a Fixture,
    body_client_id: Option<&str>,
    assertion: &str,
) -> Option<&'a Client> {
    let parts = split_assertion(assertion).ok()?;
    let client_id = assertion_client_id(body_client_id, parts.unverified_issuer.as_deref()).ok()?;
    let client = fixture
        .client(client_id)
        .filter(|client| client.auth_method == AuthMethod::PrivateKeyJwt)?;
    let keys = inline_keys(client.jwks.as_ref()?, parts.kid.as_deref());
    let audiences = [ISSUER.to_owned(), format!("{ISSUER}/token")];
    let context = AssertionContext {
        client_id: &client.client_id,
        audiences: &audiences,
        now: now(),
        clock_skew: Duration::seconds(60),
    };
    verify_assertion(assertion, &parts.alg, &keys, &context)
        .ok()
        .map(|_| client)
}

/// `/userinfo`: `input` is the `Authorization` header value. Reads the
/// header `jti` as the record lookup does, then opens the token.
pub fn bearer_token(fixture: &Fixture, input: &[u8]) -> bool {
    let Ok(value) = HeaderValue::from_bytes(input) else {
        return false;
    };
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, value);
    let Ok(token) = read_bearer_token(&headers) else {
        return false;
    };
    std::hint::black_box(header_jti(token));
    open_own_token(&fixture.keys, ISSUER, now(), token).is_ok()
}

/// `id_token_hint` at `/authorize` and at `/logout`: `input` is the hint.
/// Returns whether both endpoints accept it.
pub fn id_token_hint(fixture: &Fixture, input: &[u8]) -> bool {
    let Ok(hint) = std::str::from_utf8(input) else {
        return false;
    };
    let at_authorize = check_hint(&fixture.keys, ISSUER, now(), WEB_CLIENT, hint).is_ok();
    let at_logout = hint_claims(&fixture.keys, ISSUER, now(), hint)
        .as_ref()
        .and_then(hint_audience)
        .is_some_and(|audience| fixture.client(&audience).is_some());
    at_authorize && at_logout
}

/// `POST /register`: `input` is the JSON body. Returns whether the
/// metadata passes the rules of an open or a token-protected registration.
pub fn registration(input: &[u8]) -> bool {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let body = Ok(Bytes::copy_from_slice(input));
    let Ok(request) = crate::oauth::register::parse_body(&headers, body) else {
        return false;
    };
    let Ok(metadata) = ClientMetadata::from_json(&request) else {
        return false;
    };
    // Both policies run on every input, for coverage.
    let protected_names = ["Tessera Console".to_owned()];
    let open = validate(&metadata, Registrar::OpenSelfService, &protected_names).is_ok();
    let trusted = validate(&metadata, Registrar::TrustedSelfService, &protected_names).is_ok();
    open || trusted
}
