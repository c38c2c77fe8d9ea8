//! Per-client token lifetimes over HTTP, on a manual clock: the access
//! token's `expires_in`, refresh rotation renewing the idle lifetime, and
//! the grant's absolute end, which no rotation extends.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use reqwest::StatusCode;
use serde_json::Value;
use tessera::clients::ClientMetadata;
use tessera::clock::{Clock, ManualClock};
use tessera::store::Client;

use crate::authorize::{code_for, register_client, Browser, PASSWORD, VERIFIER};
use crate::harness::{Backend, TestApp, TestStore};
use crate::login::{add_user, fast_config};

/// Registers a first-party confidential client with 2-minute access tokens,
/// 30-minute idle refresh tokens and grants that end after an hour; returns
/// it with its secret.
async fn short_lived_client(app: &TestApp) -> (Client, String) {
    let metadata = ClientMetadata {
        client_name: Some("Short-lived".into()),
        redirect_uris: vec!["https://rp.test/cb".into()],
        scope: Some("openid offline_access".into()),
        grant_types: Some(vec!["authorization_code".into(), "refresh_token".into()]),
        first_party: true,
        access_token_ttl: Some(StdDuration::from_secs(120)),
        refresh_token_idle_ttl: Some(StdDuration::from_secs(30 * 60)),
        refresh_token_absolute_ttl: Some(StdDuration::from_secs(60 * 60)),
        ..ClientMetadata::default()
    };
    let (client, secret) = register_client(app, metadata).await;
    assert!(!secret.is_empty(), "a confidential client gets a secret");
    (client, secret)
}

/// Posts a token request as `client`; returns the status and JSON body.
async fn token(
    app: &TestApp,
    client: &Client,
    secret: &str,
    params: &[(&str, &str)],
) -> (StatusCode, Value) {
    let response = app
        .client
        .post(app.url("/token"))
        .basic_auth(&client.client_id, Some(secret))
        .form(params)
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

async fn refresh_ends_at_the_absolute_lifetime(backend: Backend) {
    let start = Utc::now();
    let clock = Arc::new(ManualClock::new(start));
    let store = TestStore::new(backend).await;
    let app =
        TestApp::spawn_configured(store, fast_config(), Arc::clone(&clock) as Arc<dyn Clock>).await;
    add_user(&app, "u1", PASSWORD).await;
    let (client, secret) = short_lived_client(&app).await;

    let mut browser = Browser::new(&app);
    let code = code_for(&mut browser, &client, "&scope=openid%20offline_access").await;
    let exchange = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", "https://rp.test/cb"),
        ("code_verifier", VERIFIER),
    ];
    let (status, body) = token(&app, &client, &secret, &exchange).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["expires_in"], 120, "{body}");
    let mut refresh_token = body["refresh_token"].as_str().unwrap().to_owned();

    // Refreshing at 25 and 50 minutes works although the first token's idle
    // lifetime ended at 30: each rotation renews it. The last rotation,
    // 30 seconds before the hour, yields a token that the grant's end cuts
    // short.
    for minutes in [25, 50] {
        clock.set(start + Duration::minutes(minutes));
        let params = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.as_str()),
        ];
        let (status, body) = token(&app, &client, &secret, &params).await;
        assert_eq!(status, StatusCode::OK, "at {minutes} minutes: {body}");
        assert_eq!(body["expires_in"], 120, "{body}");
        refresh_token = body["refresh_token"].as_str().unwrap().to_owned();
    }
    clock.set(start + Duration::seconds(59 * 60 + 30));
    let params = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.as_str()),
    ];
    let (status, body) = token(&app, &client, &secret, &params).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let last = body["refresh_token"].as_str().unwrap().to_owned();

    // A minute after that rotation the token is still within its idle
    // lifetime, but the grant ended at the hour.
    clock.set(start + Duration::seconds(60 * 60 + 30));
    let params = [
        ("grant_type", "refresh_token"),
        ("refresh_token", last.as_str()),
    ];
    let (status, body) = token(&app, &client, &secret, &params).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_grant", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_ends_at_the_absolute_lifetime_on_sqlite() {
    refresh_ends_at_the_absolute_lifetime(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_ends_at_the_absolute_lifetime_on_postgres() {
    refresh_ends_at_the_absolute_lifetime(Backend::Postgres).await;
}
