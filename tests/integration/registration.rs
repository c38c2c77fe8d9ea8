//! `POST /register` and the client configuration endpoint over real HTTP:
//! policies, RFC 7591 errors, what is echoed, and RFC 7592 management.

use chrono::{Duration, Utc};
use josekit::jwk::alg::ec::EcCurve;
use josekit::jwk::Jwk;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tessera::clients::{self, ClientMetadata, Registrar};
use tessera::config::{Config, RegistrationPolicy, RegistrationSettings};
use tessera::store::InitialAccessToken;

use crate::harness::{Backend, TestApp, TestStore};

async fn spawn(policy: RegistrationPolicy) -> TestApp {
    let config = Config {
        registration: RegistrationSettings { policy },
        ..Config::default()
    };
    TestApp::spawn_with_config(TestStore::new(Backend::Sqlite).await, config).await
}

async fn post(app: &TestApp, body: &Value, token: Option<&str>) -> reqwest::Response {
    let mut request = app.client.post(app.url("/register")).json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

/// Asserts an RFC 7591 error response and returns its description.
async fn assert_error(response: reqwest::Response, status: StatusCode, code: &str) -> String {
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], code, "{body}");
    body["error_description"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn closed_policy_rejects_registration() {
    let app = spawn(RegistrationPolicy::Closed).await;
    let response = post(
        &app,
        &json!({ "redirect_uris": ["https://rp.test/cb"] }),
        None,
    )
    .await;
    assert_error(response, StatusCode::FORBIDDEN, "access_denied").await;
}

#[tokio::test]
async fn open_registration_issues_credentials_once() {
    let app = spawn(RegistrationPolicy::Open).await;
    let request = json!({
        "redirect_uris": ["https://rp.test/cb"],
        "client_name": "Relying Party",
        "client_uri": "https://rp.test/",
        "software_statement": "ignored",
        "first_party": true,
    });
    let response = post(&app, &request, None).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["pragma"], "no-cache");
    let body: Value = response.json().await.unwrap();
    let client_id = body["client_id"].as_str().unwrap();
    let secret = body["client_secret"].as_str().unwrap();
    assert_eq!(secret.len(), 43);
    assert!(body["registration_access_token"].is_string());
    assert_eq!(body["client_secret_expires_at"], 0);
    assert_eq!(body["grant_types"], json!(["authorization_code"]));
    assert_eq!(
        body["registration_client_uri"],
        format!("http://127.0.0.1:8080/register/{client_id}")
    );
    for unknown in ["client_uri", "software_statement", "first_party"] {
        assert!(body.get(unknown).is_none(), "{unknown} echoed: {body}");
    }

    let stored = app.store.store.client(client_id).await.unwrap().unwrap();
    assert!(stored.self_registered);
    assert!(!stored.first_party);
    assert_ne!(stored.secret_digest.as_deref(), Some(secret));
    let digester = &app.state.data_keys.digester;
    assert!(app
        .state
        .registry
        .authenticate_secret(client_id, secret, digester)
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn allowed_origins_are_registered_and_updated() {
    let app = spawn(RegistrationPolicy::Open).await;
    let invalid = json!({
        "redirect_uris": ["https://spa.test/cb"],
        "allowed_origins": ["https://spa.test/"],
    });
    let description = assert_error(
        post(&app, &invalid, None).await,
        StatusCode::BAD_REQUEST,
        "invalid_client_metadata",
    )
    .await;
    assert!(
        description.starts_with("allowed_origins: "),
        "{description}"
    );

    let request = json!({
        "redirect_uris": ["https://spa.test/cb"],
        "token_endpoint_auth_method": "none",
        "allowed_origins": ["https://spa.test"],
    });
    let created: Value = post(&app, &request, None).await.json().await.unwrap();
    assert_eq!(created["allowed_origins"], json!(["https://spa.test"]));
    let client_id = created["client_id"].as_str().unwrap();
    let stored = app.store.store.client(client_id).await.unwrap().unwrap();
    assert_eq!(stored.allowed_origins, vec!["https://spa.test"]);

    let update = json!({
        "client_id": client_id,
        "redirect_uris": ["https://spa.test/cb"],
        "token_endpoint_auth_method": "none",
        "allowed_origins": ["https://spa.test", "https://beta.spa.test"],
    });
    let updated = app
        .client
        .put(app.url(&format!("/register/{client_id}")))
        .bearer_auth(created["registration_access_token"].as_str().unwrap())
        .json(&update)
        .send()
        .await
        .unwrap();
    assert_eq!(updated.status(), StatusCode::OK);
    let updated: Value = updated.json().await.unwrap();
    let expected = json!(["https://spa.test", "https://beta.spa.test"]);
    assert_eq!(updated["allowed_origins"], expected);
    let stored = app.store.store.client(client_id).await.unwrap().unwrap();
    assert_eq!(stored.allowed_origins.len(), 2);
}

#[tokio::test]
async fn fragments_and_script_schemes_are_rejected() {
    let app = spawn(RegistrationPolicy::Open).await;
    let native = |uri: &str| json!({ "application_type": "native", "redirect_uris": [uri] });
    let requests = [
        json!({ "redirect_uris": ["https://rp.test/cb#x"] }),
        json!({ "redirect_uris": ["JaVaScRiPt:alert(1)//"] }),
        json!({ "redirect_uris": ["data:text/html,x"] }),
        json!({ "redirect_uris": ["http://rp.test/cb"] }),
        json!({ "redirect_uris": ["myapp:/cb"] }),
        native("myapp:/cb"),
        json!({ "redirect_uris": ["rp.test/cb"] }),
    ];
    for request in requests {
        let response = post(&app, &request, None).await;
        let description =
            assert_error(response, StatusCode::BAD_REQUEST, "invalid_redirect_uri").await;
        assert!(description.starts_with("redirect_uris: "), "{description}");
    }
    assert!(app.store.store.clients().await.unwrap().is_empty());
}

#[tokio::test]
async fn private_key_in_registered_jwks_is_rejected() {
    let app = spawn(RegistrationPolicy::Open).await;
    let private = Jwk::generate_ec_key(EcCurve::P256).unwrap();
    let public = private.to_public_key().unwrap();
    let sets = [
        json!({ "keys": [Value::Object(private.as_ref().clone())] }),
        json!({ "keys": [Value::Object(public.as_ref().clone()), Value::Object(private.as_ref().clone())] }),
        json!({ "keys": [{ "kty": "oct", "k": "c2VjcmV0LXNlY3JldA" }] }),
    ];
    for jwks in sets {
        let request = json!({
            "redirect_uris": ["https://rp.test/cb"],
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": jwks,
        });
        let response = post(&app, &request, None).await;
        let description =
            assert_error(response, StatusCode::BAD_REQUEST, "invalid_client_metadata").await;
        assert!(description.starts_with("jwks: "), "{description}");
        assert!(description.contains("private member"), "{description}");
    }
}

#[tokio::test]
async fn self_registered_client_cannot_pose_as_first_party() {
    let app = spawn(RegistrationPolicy::Open).await;
    let console = ClientMetadata {
        client_name: Some("Tessera Console".into()),
        redirect_uris: vec!["https://console.test/cb".into()],
        first_party: true,
        ..ClientMetadata::default()
    };
    clients::register(
        app.store.store.as_ref(),
        &app.state.data_keys.digester,
        &console,
        Registrar::Administrator,
        Utc::now(),
    )
    .await
    .unwrap();

    let names = [
        "Tessera Console".to_owned(),
        "Tessera Console\u{200B}".to_owned(),
        "Tessera \u{0421}\u{043E}nsole".to_owned(),
        "Tessera \u{202E}elosnoC\u{202C}".to_owned(),
        "x".repeat(300),
    ];
    for name in names {
        let request = json!({
            "redirect_uris": ["https://evil.test/cb"],
            "client_uri": "https://evil.test/",
            "logo_uri": "https://evil.test/l.png",
            "client_name": name,
        });
        let response = post(&app, &request, None).await;
        let description =
            assert_error(response, StatusCode::BAD_REQUEST, "invalid_client_metadata").await;
        assert!(description.starts_with("client_name: "), "{description}");
    }

    // Markup is stored as text, for the consent page to escape, and the
    // client is marked self-registered and never first-party.
    let request = json!({
        "redirect_uris": ["https://evil.test/cb"],
        "client_name": "<img src=x onerror=alert(1)>",
    });
    let response = post(&app, &request, None).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    let stored = app
        .store
        .store
        .client(body["client_id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.name, "<img src=x onerror=alert(1)>");
    assert!(stored.self_registered);
    assert!(!stored.first_party);
}

async fn issue_initial_token(app: &TestApp, uses: i64) -> String {
    let token = tessera::crypto::random_token();
    app.store
        .store
        .insert_initial_access_token(&InitialAccessToken {
            digest: app.state.data_keys.digester.digest(&token),
            remaining_uses: uses,
            expires_at: Utc::now() + Duration::hours(1),
            created_at: Utc::now(),
        })
        .await
        .unwrap();
    token
}

#[tokio::test]
async fn token_policy_needs_a_valid_initial_access_token() {
    let app = spawn(RegistrationPolicy::Token).await;
    let request = json!({
        "grant_types": ["client_credentials"],
        "scope": "api.read",
    });

    // RFC 6750 section 3.1: no token, no error code in the challenge.
    let missing = post(&app, &request, None).await;
    assert_eq!(
        missing.headers()["www-authenticate"],
        "Bearer realm=\"tessera\""
    );
    assert_error(missing, StatusCode::UNAUTHORIZED, "invalid_request").await;
    let wrong = post(&app, &request, Some("not-a-token")).await;
    assert_eq!(
        wrong.headers()["www-authenticate"],
        "Bearer realm=\"tessera\", error=\"invalid_token\""
    );
    assert_error(wrong, StatusCode::UNAUTHORIZED, "invalid_token").await;

    let token = issue_initial_token(&app, 1).await;
    // A rejected request does not use the token up.
    let bad = post(
        &app,
        &json!({ "redirect_uris": ["https://rp.test/cb#x"] }),
        Some(&token),
    )
    .await;
    assert_error(bad, StatusCode::BAD_REQUEST, "invalid_redirect_uri").await;
    let accepted = post(&app, &request, Some(&token)).await;
    assert_eq!(accepted.status(), StatusCode::CREATED);
    let again = post(&app, &request, Some(&token)).await;
    assert_error(again, StatusCode::UNAUTHORIZED, "invalid_token").await;
}

#[tokio::test]
async fn registration_is_managed_with_its_access_token() {
    let app = spawn(RegistrationPolicy::Open).await;
    let response = post(
        &app,
        &json!({ "redirect_uris": ["https://rp.test/cb"], "client_name": "RP" }),
        None,
    )
    .await;
    let created: Value = response.json().await.unwrap();
    let client_id = created["client_id"].as_str().unwrap().to_owned();
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    let token = created["registration_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let uri = app.url(&format!("/register/{client_id}"));

    let read = app
        .client
        .get(&uri)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    assert_eq!(read.headers()["cache-control"], "no-store");
    let read: Value = read.json().await.unwrap();
    assert_eq!(read["redirect_uris"], created["redirect_uris"]);
    assert!(read.get("client_secret").is_none());

    let wrong = app
        .client
        .get(&uri)
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_error(wrong, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let unknown = app
        .client
        .get(app.url("/register/unknown-client"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_error(unknown, StatusCode::UNAUTHORIZED, "invalid_token").await;

    let update = json!({
        "client_id": client_id,
        "redirect_uris": ["https://rp.test/new"],
        "client_name": "RP renamed",
    });
    let updated = app
        .client
        .put(&uri)
        .bearer_auth(&token)
        .json(&update)
        .send()
        .await
        .unwrap();
    assert_eq!(updated.status(), StatusCode::OK);
    let updated: Value = updated.json().await.unwrap();
    assert_eq!(updated["redirect_uris"], json!(["https://rp.test/new"]));
    assert_eq!(updated["client_name"], "RP renamed");

    let fragment = json!({ "client_id": client_id, "redirect_uris": ["https://rp.test/cb#x"] });
    let rejected = app
        .client
        .put(&uri)
        .bearer_auth(&token)
        .json(&fragment)
        .send()
        .await
        .unwrap();
    assert_error(rejected, StatusCode::BAD_REQUEST, "invalid_redirect_uri").await;
    let no_id = json!({ "redirect_uris": ["https://rp.test/cb"] });
    let rejected = app
        .client
        .put(&uri)
        .bearer_auth(&token)
        .json(&no_id)
        .send()
        .await
        .unwrap();
    assert_error(rejected, StatusCode::BAD_REQUEST, "invalid_client_metadata").await;

    // The secret works until the registration is deleted, then fails at once.
    let registry = &app.state.registry;
    let digester = &app.state.data_keys.digester;
    let before = registry
        .authenticate_secret(&client_id, &secret, digester)
        .await
        .unwrap();
    assert!(before.is_some());
    let deleted = app
        .client
        .delete(&uri)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let after = registry
        .authenticate_secret(&client_id, &secret, digester)
        .await
        .unwrap();
    assert!(after.is_none());
    let gone = app
        .client
        .get(&uri)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_error(gone, StatusCode::UNAUTHORIZED, "invalid_token").await;
}

#[tokio::test]
async fn malformed_body_is_invalid_client_metadata() {
    let app = spawn(RegistrationPolicy::Open).await;
    let response = app
        .client
        .post(app.url("/register"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_client_metadata").await;
    let response = app
        .client
        .post(app.url("/register"))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_client_metadata").await;
}

#[tokio::test]
async fn oversized_body_gets_json_413() {
    let app = spawn(RegistrationPolicy::Open).await;
    let request = json!({
        "redirect_uris": ["https://rp.test/cb"],
        "client_name": "x".repeat(70 * 1024),
    });
    let response = post(&app, &request, None).await;
    let description = assert_error(
        response,
        StatusCode::PAYLOAD_TOO_LARGE,
        "invalid_client_metadata",
    )
    .await;
    assert!(description.contains("65536 bytes"), "{description}");
}
