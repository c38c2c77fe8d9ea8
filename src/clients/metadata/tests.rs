//! One table of registration requests, valid and invalid, each with the
//! exact outcome: accepted, or the error code and the field it names.

use josekit::jwk::alg::ec::EcCurve;
use josekit::jwk::Jwk;
use serde_json::{json, Value};

use super::*;

const REDIRECT: ErrorCode = ErrorCode::InvalidRedirectUri;
const METADATA: ErrorCode = ErrorCode::InvalidClientMetadata;

enum Expect {
    Accepted,
    Rejected(ErrorCode, &'static str),
}

use Expect::{Accepted, Rejected};

fn keys() -> (Value, Value) {
    let private = Jwk::generate_ec_key(EcCurve::P256).unwrap();
    let public = private.to_public_key().unwrap();
    (
        Value::Object(private.as_ref().clone()),
        Value::Object(public.as_ref().clone()),
    )
}

fn redirect(uri: &str) -> Value {
    json!({ "redirect_uris": [uri] })
}

fn cases() -> Vec<(&'static str, Value, Registrar, Expect)> {
    use Registrar::{
        Administrator as Admin, OpenSelfService as Open, TrustedSelfService as Trusted,
    };
    let (private_key, public_key) = keys();
    vec![
        // Accepted.
        (
            "https redirect",
            redirect("https://rp.test/cb"),
            Open,
            Accepted,
        ),
        (
            "loopback ipv4 with port",
            redirect("http://127.0.0.1:51004/cb"),
            Open,
            Accepted,
        ),
        (
            "loopback ipv6",
            redirect("http://[::1]:8080/cb"),
            Open,
            Accepted,
        ),
        (
            "localhost exactly",
            redirect("http://localhost:8080/cb"),
            Open,
            Accepted,
        ),
        (
            "native private-use scheme",
            json!({ "application_type": "native", "redirect_uris": ["com.example.app:/oauth2redirect"] }),
            Open,
            Accepted,
        ),
        (
            "native claimed https",
            json!({ "application_type": "native", "redirect_uris": ["https://app.example.com/cb"] }),
            Open,
            Accepted,
        ),
        (
            "public client",
            json!({ "redirect_uris": ["https://pub.test/cb"], "token_endpoint_auth_method": "none" }),
            Open,
            Accepted,
        ),
        (
            "client credentials with a token",
            json!({ "grant_types": ["client_credentials"], "scope": "api.read" }),
            Trusted,
            Accepted,
        ),
        (
            "private_key_jwt with jwks_uri",
            json!({ "redirect_uris": ["https://rp.test/cb"], "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://rp.test/jwks" }),
            Open,
            Accepted,
        ),
        (
            "private_key_jwt with public jwks",
            json!({ "redirect_uris": ["https://rp.test/cb"], "token_endpoint_auth_method": "private_key_jwt", "jwks": { "keys": [public_key] } }),
            Open,
            Accepted,
        ),
        (
            "unknown metadata ignored",
            json!({ "redirect_uris": ["https://rp.test/cb"], "client_uri": "https://rp.test/", "software_version": 3, "first_party": true }),
            Open,
            Accepted,
        ),
        (
            "stray spaces in scope",
            json!({ "redirect_uris": ["https://rp.test/cb"], "scope": " openid  email " }),
            Open,
            Accepted,
        ),
        (
            "nulls count as absent",
            json!({ "redirect_uris": ["https://rp.test/cb"], "grant_types": null, "scope": null }),
            Open,
            Accepted,
        ),
        // Redirect URIs.
        (
            "fragment",
            redirect("https://rp.test/cb#x"),
            Open,
            Rejected(REDIRECT, "redirect_uris"),
        ),
        (
            "empty fragment",
            redirect("https://rp.test/cb#"),
            Open,
            Rejected(REDIRECT, "redirect_uris"),
        ),
        (
            "javascript in mixed case",
            redirect("JaVaScRiPt:alert(1)//"),
            Open,
            Rejected(REDIRECT, "redirect_uris"),
        ),
        (
            "data scheme",
            redirect("data:text/html,x"),
            Open,
            Rejected(REDIRECT, "redirect_uris"),
        ),
        (
            "vbscript scheme",
            redirect("vbscript:msgbox(1)"),
            Open,
            Rejected(REDIRECT, "redirect_uris"),
        ),
        (
            "file scheme",
            redirect("file:///etc/passwd"),
            Admin,
            Rejected(REDIRECT, "redirect_uris"),
        ),
        (
            "non-loopback http",
            redirect("http://rp.test/cb"),
            Open,
            Rejected(REDIRECT, "redirect_uris"),
        ),
        (
            "localhost suffix",
            redirect("http://localhost.evil.test/cb"),
            Open,
            Rejected(REDIRECT, "redirect_uris"),
        ),
        (
            "private-use scheme without dot",
            json!({ "application_type": "native", "redirect_uris": ["myapp:/cb"] }),
            Open,
            Rejected(REDIRECT, "redirect_uris"),
        ),
        (
            "private-use scheme on web client",
            redirect("com.example.app:/cb"),
            Open,
            Rejected(REDIRECT, "redirect_uris"),
        ),
        (
            "relative without scheme",
            redirect("rp.test/cb"),
            Open,
            Rejected(REDIRECT, "redirect_uris"),
        ),
        (
            "relative path",
            redirect("/cb"),
            Admin,
            Rejected(REDIRECT, "redirect_uris"),
        ),
        (
            "embedded newline",
            redirect("https://rp.test/c\nb"),
            Open,
            Rejected(REDIRECT, "redirect_uris"),
        ),
        (
            "user information",
            redirect("https://user:pw@rp.test/cb"),
            Open,
            Rejected(REDIRECT, "redirect_uris"),
        ),
        (
            "no redirect for code flow",
            json!({}),
            Open,
            Rejected(REDIRECT, "redirect_uris"),
        ),
        (
            "redirect_uris not an array",
            json!({ "redirect_uris": "https://rp.test/cb" }),
            Open,
            Rejected(METADATA, "redirect_uris"),
        ),
        (
            "post-logout fragment",
            json!({ "redirect_uris": ["https://rp.test/cb"], "post_logout_redirect_uris": ["https://rp.test/bye#x"] }),
            Open,
            Rejected(METADATA, "post_logout_redirect_uris"),
        ),
        // Grant and response types.
        (
            "implicit grant",
            json!({ "redirect_uris": ["https://rp.test/cb"], "grant_types": ["implicit"] }),
            Open,
            Rejected(METADATA, "grant_types"),
        ),
        (
            "password grant",
            json!({ "grant_types": ["password"] }),
            Admin,
            Rejected(METADATA, "grant_types"),
        ),
        (
            "refresh without code",
            json!({ "grant_types": ["refresh_token"] }),
            Admin,
            Rejected(METADATA, "grant_types"),
        ),
        (
            "empty grant list",
            json!({ "grant_types": [] }),
            Admin,
            Rejected(METADATA, "grant_types"),
        ),
        (
            "token response type",
            json!({ "redirect_uris": ["https://rp.test/cb"], "response_types": ["token"] }),
            Open,
            Rejected(METADATA, "response_types"),
        ),
        (
            "code response without code grant",
            json!({ "grant_types": ["client_credentials"], "response_types": ["code"] }),
            Trusted,
            Rejected(METADATA, "response_types"),
        ),
        (
            "code grant without code response",
            json!({ "redirect_uris": ["https://rp.test/cb"], "response_types": [] }),
            Open,
            Rejected(METADATA, "response_types"),
        ),
        (
            "client credentials for a public client",
            json!({ "grant_types": ["client_credentials"], "token_endpoint_auth_method": "none" }),
            Trusted,
            Rejected(METADATA, "grant_types"),
        ),
        (
            "client credentials under open policy",
            json!({ "grant_types": ["client_credentials"] }),
            Open,
            Rejected(METADATA, "grant_types"),
        ),
        // Authentication and keys.
        (
            "client_secret_jwt unsupported",
            json!({ "redirect_uris": ["https://rp.test/cb"], "token_endpoint_auth_method": "client_secret_jwt" }),
            Open,
            Rejected(METADATA, "token_endpoint_auth_method"),
        ),
        (
            "private_key_jwt without keys",
            json!({ "redirect_uris": ["https://rp.test/cb"], "token_endpoint_auth_method": "private_key_jwt" }),
            Open,
            Rejected(METADATA, "jwks"),
        ),
        (
            "jwks and jwks_uri together",
            json!({ "redirect_uris": ["https://rp.test/cb"], "token_endpoint_auth_method": "private_key_jwt", "jwks": { "keys": [] }, "jwks_uri": "https://rp.test/jwks" }),
            Open,
            Rejected(METADATA, "jwks_uri"),
        ),
        (
            "jwks_uri over plain http",
            json!({ "redirect_uris": ["https://rp.test/cb"], "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "http://rp.test/jwks" }),
            Open,
            Rejected(METADATA, "jwks_uri"),
        ),
        (
            "jwks with a private key",
            json!({ "redirect_uris": ["https://rp.test/cb"], "token_endpoint_auth_method": "private_key_jwt", "jwks": { "keys": [private_key] } }),
            Open,
            Rejected(METADATA, "jwks"),
        ),
        (
            "jwks with a symmetric key",
            json!({ "redirect_uris": ["https://rp.test/cb"], "token_endpoint_auth_method": "private_key_jwt", "jwks": { "keys": [{ "kty": "oct", "k": "c2VjcmV0" }] } }),
            Open,
            Rejected(METADATA, "jwks"),
        ),
        (
            "jwks with a secret method",
            json!({ "redirect_uris": ["https://rp.test/cb"], "jwks": { "keys": [] } }),
            Open,
            Rejected(METADATA, "jwks"),
        ),
        (
            "self-registered jwks_uri on loopback",
            json!({ "redirect_uris": ["https://rp.test/cb"], "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "http://127.0.0.1:9000/jwks" }),
            Trusted,
            Rejected(METADATA, "jwks_uri"),
        ),
        (
            "self-registered jwks_uri on private address",
            json!({ "redirect_uris": ["https://rp.test/cb"], "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://10.0.0.5/jwks" }),
            Open,
            Rejected(METADATA, "jwks_uri"),
        ),
        (
            "operator jwks_uri on loopback",
            json!({ "redirect_uris": ["https://rp.test/cb"], "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "http://127.0.0.1:9000/jwks" }),
            Admin,
            Accepted,
        ),
        // Scopes, algorithms, names.
        (
            "quote in scope",
            json!({ "redirect_uris": ["https://rp.test/cb"], "scope": "openid a\"b" }),
            Open,
            Rejected(METADATA, "scope"),
        ),
        (
            "resource scope under open policy",
            json!({ "redirect_uris": ["https://rp.test/cb"], "scope": "openid api.write" }),
            Open,
            Rejected(METADATA, "scope"),
        ),
        (
            "id token alg none",
            json!({ "redirect_uris": ["https://rp.test/cb"], "id_token_signed_response_alg": "none" }),
            Open,
            Rejected(METADATA, "id_token_signed_response_alg"),
        ),
        (
            "unknown application type",
            json!({ "redirect_uris": ["https://rp.test/cb"], "application_type": "desktop" }),
            Open,
            Rejected(METADATA, "application_type"),
        ),
        (
            "bidi override in name",
            json!({ "redirect_uris": ["https://rp.test/cb"], "client_name": "Pay \u{202E}lapyaP\u{202C}" }),
            Open,
            Rejected(METADATA, "client_name"),
        ),
        (
            "name of 300 characters",
            json!({ "redirect_uris": ["https://rp.test/cb"], "client_name": "a".repeat(300) }),
            Open,
            Rejected(METADATA, "client_name"),
        ),
        (
            "first-party look-alike name",
            json!({ "redirect_uris": ["https://evil.test/cb"], "client_name": "Tessera C\u{043E}nsole" }),
            Open,
            Rejected(METADATA, "client_name"),
        ),
        (
            "first-party name by an operator",
            json!({ "redirect_uris": ["https://rp.test/cb"], "client_name": "Tessera Console" }),
            Admin,
            Accepted,
        ),
        (
            "body not an object",
            json!(["https://rp.test/cb"]),
            Open,
            Rejected(METADATA, "request"),
        ),
        (
            "allowed origins",
            json!({ "redirect_uris": ["https://spa.test/cb"], "allowed_origins": ["https://spa.test", "http://localhost:5173"] }),
            Open,
            Accepted,
        ),
        (
            "allowed origin with a trailing slash",
            json!({ "redirect_uris": ["https://spa.test/cb"], "allowed_origins": ["https://spa.test/"] }),
            Open,
            Rejected(METADATA, "allowed_origins"),
        ),
        (
            "allowed origin over plain http",
            json!({ "redirect_uris": ["https://spa.test/cb"], "allowed_origins": ["http://spa.test"] }),
            Open,
            Rejected(METADATA, "allowed_origins"),
        ),
        (
            "allowed origins not a list",
            json!({ "redirect_uris": ["https://spa.test/cb"], "allowed_origins": "https://spa.test" }),
            Open,
            Rejected(METADATA, "allowed_origins"),
        ),
    ]
}

#[test]
fn allowed_origins_are_deduplicated_and_capped() {
    let origin = "https://spa.test".to_owned();
    let metadata = ClientMetadata {
        allowed_origins: vec![origin.clone(), origin.clone()],
        ..ClientMetadata::from_json(&redirect("https://spa.test/cb")).unwrap()
    };
    let valid = validate(&metadata, Registrar::OpenSelfService, &[]).unwrap();
    assert_eq!(valid.allowed_origins, vec![origin]);

    let many = (0..=MAX_ALLOWED_ORIGINS)
        .map(|port| format!("http://localhost:{}", 3000 + port))
        .collect();
    let metadata = ClientMetadata {
        allowed_origins: many,
        ..metadata
    };
    let err = validate(&metadata, Registrar::OpenSelfService, &[]).unwrap_err();
    assert_eq!(err.field, "allowed_origins");
}

#[test]
fn lifetimes_are_bounded_like_the_configuration() {
    let base = ClientMetadata::from_json(&redirect("https://rp.test/cb")).unwrap();
    let with = |access: Option<u64>, idle: Option<u64>, absolute: Option<u64>| ClientMetadata {
        access_token_ttl: access.map(Duration::from_secs),
        refresh_token_idle_ttl: idle.map(Duration::from_secs),
        refresh_token_absolute_ttl: absolute.map(Duration::from_secs),
        ..base.clone()
    };

    let valid = validate(
        &with(Some(300), Some(1800), Some(3600)),
        Registrar::Administrator,
        &[],
    )
    .unwrap();
    let expected = ClientLifetimes {
        access_token_ttl_seconds: Some(300),
        refresh_token_idle_ttl_seconds: Some(1800),
        refresh_token_absolute_ttl_seconds: Some(3600),
    };
    assert_eq!(valid.lifetimes, expected);
    let unset = validate(&base, Registrar::Administrator, &[]).unwrap();
    assert_eq!(unset.lifetimes, ClientLifetimes::default());

    let day = 86_400;
    let rejected = [
        (with(Some(0), None, None), "access_token_ttl"),
        (with(Some(day + 1), None, None), "access_token_ttl"),
        (with(None, Some(0), None), "refresh_token_idle_ttl"),
        (
            with(None, None, Some(3651 * day)),
            "refresh_token_absolute_ttl",
        ),
        (with(None, Some(3600), Some(1800)), "refresh_token_idle_ttl"),
    ];
    for (metadata, field) in rejected {
        let err = validate(&metadata, Registrar::Administrator, &[]).unwrap_err();
        assert_eq!(err.field, field, "{err:?}");
    }
    let fraction = ClientMetadata {
        access_token_ttl: Some(Duration::from_millis(1500)),
        ..base.clone()
    };
    let err = validate(&fraction, Registrar::Administrator, &[]).unwrap_err();
    assert!(
        err.description.contains("whole number of seconds"),
        "{err:?}"
    );
}

#[test]
fn registration_inputs_table() {
    let protected = vec!["Tessera Console".to_owned()];
    let cases = cases();
    assert!(cases.len() >= 30);
    for (label, request, registrar, expected) in cases {
        let outcome = ClientMetadata::from_json(&request)
            .and_then(|metadata| validate(&metadata, registrar, &protected));
        match (expected, outcome) {
            (Accepted, Ok(_)) => {}
            (Accepted, Err(err)) => panic!("{label}: expected acceptance, got {err:?}"),
            (Rejected(code, field), Ok(valid)) => {
                panic!("{label}: expected {code:?} on {field}, got {valid:?}")
            }
            (Rejected(code, field), Err(err)) => {
                assert_eq!(err.code, code, "{label}: {err:?}");
                assert_eq!(err.field, field, "{label}: {err:?}");
                assert!(
                    err.description.starts_with(&format!("{field}: ")),
                    "{label}: {err:?}"
                );
            }
        }
    }
}

#[test]
fn defaults_follow_rfc7591() {
    let metadata = ClientMetadata::from_json(&redirect("https://rp.test/cb")).unwrap();
    let valid = validate(&metadata, Registrar::OpenSelfService, &[]).unwrap();
    assert_eq!(valid.grant_types, vec!["authorization_code"]);
    assert_eq!(valid.response_types, vec!["code"]);
    assert_eq!(valid.auth_method, AuthMethod::ClientSecretBasic);
    assert_eq!(valid.id_token_signed_response_alg, "RS256");
    assert_eq!(valid.application_type, ApplicationType::Web);
    assert_eq!(valid.scopes, vec!["openid", "profile", "email"]);
    assert!(valid.require_pkce);
    assert!(!valid.first_party);
}

#[test]
fn self_service_is_never_first_party() {
    let metadata = ClientMetadata {
        first_party: true,
        ..ClientMetadata::from_json(&redirect("https://rp.test/cb")).unwrap()
    };
    for registrar in [Registrar::OpenSelfService, Registrar::TrustedSelfService] {
        assert!(!validate(&metadata, registrar, &[]).unwrap().first_party);
    }
    assert!(
        validate(&metadata, Registrar::Administrator, &[])
            .unwrap()
            .first_party
    );
}

#[test]
fn allow_no_pkce_needs_a_confidential_client() {
    let mut metadata = ClientMetadata::from_json(&json!({
        "redirect_uris": ["https://pub.test/cb"],
        "token_endpoint_auth_method": "none",
    }))
    .unwrap();
    metadata.allow_no_pkce = true;
    let err = validate(&metadata, Registrar::Administrator, &[]).unwrap_err();
    assert_eq!(err.field, "allow_no_pkce");

    metadata.token_endpoint_auth_method = None;
    let valid = validate(&metadata, Registrar::Administrator, &[]).unwrap();
    assert!(!valid.require_pkce);
}

#[test]
fn from_json_reads_no_tessera_only_settings() {
    let metadata = ClientMetadata::from_json(&json!({
        "redirect_uris": ["https://rp.test/cb"],
        "first_party": true,
        "allow_no_pkce": true,
        "default_resource": "https://rs1.test/",
    }))
    .unwrap();
    assert!(!metadata.first_party);
    assert!(!metadata.allow_no_pkce);
    assert_eq!(metadata.default_resource, None);
}
