//! Discovery documents over real HTTP: where they are served, the exact
//! issuer string, URLs from configuration only, and caching headers.

use reqwest::StatusCode;
use serde_json::Value;
use tessera::config::{Config, RegistrationPolicy};

use crate::harness::Backend;
use tessera::clock::Clock;

use crate::oauth_support::{add_client, add_resource, service, OauthApp};

const FORGED_HEADERS: [(&str, &str); 5] = [
    ("host", "evil.test"),
    ("x-forwarded-host", "evil.test"),
    ("x-forwarded-proto", "http"),
    ("x-forwarded-port", "8443"),
    ("forwarded", "host=evil.test;proto=http"),
];

async fn fetch(oauth: &OauthApp, path: &str, forged: bool) -> Value {
    let mut request = oauth.app.client.get(oauth.app.url(path));
    if forged {
        for (name, value) in FORGED_HEADERS {
            request = request.header(name, value);
        }
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    let cache_control = response.headers()["cache-control"].to_str().unwrap();
    assert_eq!(cache_control, "public, max-age=300");
    assert_eq!(response.headers()["content-type"], "application/json");
    response.json().await.unwrap()
}

fn assert_urls_from_issuer(document: &Value, issuer: &str) {
    assert_eq!(document["issuer"], issuer);
    for (member, path) in [
        ("jwks_uri", "/jwks"),
        ("token_endpoint", "/token"),
        ("introspection_endpoint", "/introspect"),
        ("revocation_endpoint", "/revoke"),
    ] {
        assert_eq!(document[member], format!("{issuer}{path}"), "{member}");
    }
    assert!(!document.to_string().contains("evil.test"));
}

#[tokio::test]
async fn discovery_documents_at_root_issuer() {
    let oauth = OauthApp::spawn(Backend::Sqlite).await;
    add_resource(&oauth, "https://rs1.test/", &["api.write", "api.read"]).await;
    let issuer = oauth.issuer().to_owned();

    // The very first request carries forged headers: nothing is kept.
    let first = fetch(&oauth, "/.well-known/openid-configuration", true).await;
    let plain = fetch(&oauth, "/.well-known/openid-configuration", false).await;
    let rfc8414 = fetch(&oauth, "/.well-known/oauth-authorization-server", true).await;
    assert_eq!(first, plain);
    assert_eq!(first, rfc8414);
    assert_urls_from_issuer(&first, &issuer);

    assert_eq!(
        first["grant_types_supported"],
        serde_json::json!(["authorization_code", "refresh_token", "client_credentials"])
    );
    assert_eq!(
        first["response_types_supported"],
        serde_json::json!(["code"])
    );
    assert_eq!(
        first["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(first["request_parameter_supported"], false);
    assert_eq!(first["request_uri_parameter_supported"], false);
    assert_eq!(
        first["scopes_supported"],
        serde_json::json!([
            "api.read",
            "api.write",
            "email",
            "offline_access",
            "openid",
            "profile"
        ])
    );
    let methods = first["token_endpoint_auth_methods_supported"]
        .as_array()
        .unwrap();
    for method in [
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
        "none",
    ] {
        assert!(methods.iter().any(|value| value == method), "{method}");
    }
    let algs = first["token_endpoint_auth_signing_alg_values_supported"]
        .as_array()
        .unwrap();
    assert!(algs.iter().any(|value| value == "ES256"));
    assert!(!algs.iter().any(|value| value == "none" || value == "HS256"));
    assert!(first.get("registration_endpoint").is_none());
}

#[tokio::test]
async fn open_registration_is_advertised() {
    let mut config = Config::default();
    config.registration.policy = RegistrationPolicy::Open;
    let oauth = OauthApp::spawn_configured(Backend::Sqlite, config).await;
    let document = fetch(&oauth, "/.well-known/openid-configuration", false).await;
    assert_eq!(
        document["registration_endpoint"],
        format!("{}/register", oauth.issuer())
    );
}

#[tokio::test]
async fn issuer_with_path_is_exact_everywhere() {
    let config = Config {
        issuer: "http://127.0.0.1:8080/t1".into(),
        ..Config::default()
    };
    let oauth = OauthApp::spawn_configured(Backend::Sqlite, config).await;
    let issuer = "http://127.0.0.1:8080/t1";

    let openid = fetch(&oauth, "/t1/.well-known/openid-configuration", true).await;
    let rfc8414 = fetch(&oauth, "/.well-known/oauth-authorization-server/t1", true).await;
    assert_eq!(openid, rfc8414);
    assert_urls_from_issuer(&openid, issuer);
    for wrong in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
        "/t1/.well-known/oauth-authorization-server",
        "/token",
    ] {
        let response = oauth.app.get(wrong).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{wrong}");
    }

    // The endpoints are served under the path, and the token and its
    // introspection carry the same issuer string.
    let resource = add_resource(&oauth, "https://rs1.test/", &["api.read"]).await;
    let client = add_client(
        &oauth,
        service("client_secret_basic", "api.read", Some("https://rs1.test/")),
    )
    .await;
    let response = oauth
        .app
        .client
        .post(oauth.app.url("/t1/token"))
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let token = response.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = oauth
        .app
        .client
        .post(oauth.app.url("/t1/introspect"))
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    let seen: Value = response.json().await.unwrap();
    assert_eq!(seen["iss"], issuer);
    let inner = tessera::tokens::jwe::decrypt(&token, &resource.private_jwk).unwrap();
    let verified = oauth
        .app
        .keys
        .ring()
        .verify(&inner, oauth.clock.now())
        .unwrap();
    let claims: Value = serde_json::from_slice(&verified.payload).unwrap();
    assert_eq!(claims["iss"], issuer);

    let jwks = oauth.app.get("/t1/jwks").await;
    assert_eq!(jwks.status(), StatusCode::OK);
}
