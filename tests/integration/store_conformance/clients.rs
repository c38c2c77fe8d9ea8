//! Store conformance for clients, initial access tokens and resource
//! servers, on both backends.

use std::sync::Arc;

use chrono::{Duration, DurationRound, TimeZone, Utc};
use serde_json::json;
use tessera::store::{
    ApplicationType, AuthMethod, Client, EncryptionKeySource, InitialAccessToken, ResourceServer,
    StoreError, CLIENTS_TOPIC, RESOURCES_TOPIC,
};

use crate::harness::TestStore;

conformance!(
    client_round_trips,
    client_id_is_unique,
    client_update_replaces_fields,
    client_update_of_unknown_id_fails,
    allowed_origins_are_the_union,
    client_secret_is_replaced,
    client_delete_reports_existence,
    client_writes_bump_generation,
    initial_access_token_counts_uses,
    initial_access_token_expires,
    concurrent_token_uses_respect_limit,
    resource_server_round_trips,
    resource_server_identifier_is_unique,
    resource_server_found_by_introspection_client,
    resource_writes_bump_generation,
);

fn at(seconds: i64) -> chrono::DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + seconds, 0).unwrap()
}

pub fn sample_client(client_id: &str) -> Client {
    Client {
        client_id: client_id.to_owned(),
        name: "Sample".into(),
        application_type: ApplicationType::Web,
        redirect_uris: vec!["https://rp.test/cb".into(), "http://127.0.0.1/cb".into()],
        post_logout_redirect_uris: vec!["https://rp.test/bye".into()],
        grant_types: vec!["authorization_code".into(), "refresh_token".into()],
        response_types: vec!["code".into()],
        scopes: vec!["openid".into(), "api.read".into()],
        auth_method: AuthMethod::ClientSecretBasic,
        secret_digest: Some("digest-1".into()),
        jwks: None,
        jwks_uri: None,
        default_resource: Some("https://rs1.test/".into()),
        id_token_signed_response_alg: "RS256".into(),
        first_party: true,
        require_pkce: true,
        self_registered: false,
        registration_token_digest: None,
        allowed_origins: vec!["https://app.rp.test".into()],
        access_token_ttl_seconds: Some(300),
        refresh_token_idle_ttl_seconds: Some(1800),
        refresh_token_absolute_ttl_seconds: Some(3600),
        created_at: at(0),
        updated_at: at(0),
    }
}

pub fn sample_resource(identifier: &str, introspection_client_id: &str) -> ResourceServer {
    ResourceServer {
        identifier: identifier.to_owned(),
        name: "API".into(),
        scopes: vec!["api.read".into(), "api.write".into()],
        access_token_ttl_seconds: Some(300),
        signing_alg: "ES256".into(),
        encryption_key: EncryptionKeySource::Jwk(
            json!({ "kty": "EC", "crv": "P-256", "x": "x", "y": "y", "kid": "k1" }),
        ),
        introspection_client_id: introspection_client_id.to_owned(),
        introspection_secret_digest: "digest-rs".into(),
        created_at: at(0),
        updated_at: at(0),
    }
}

async fn client_round_trips(test: TestStore) {
    let mut client = sample_client("c1");
    client.auth_method = AuthMethod::PrivateKeyJwt;
    client.jwks = Some(json!({ "keys": [{ "kty": "EC", "kid": "a" }] }));
    client.secret_digest = None;
    client.registration_token_digest = Some("rat".into());
    client.created_at = Utc::now()
        .duration_trunc(Duration::milliseconds(1))
        .unwrap();
    test.store.insert_client(&client).await.unwrap();
    assert_eq!(test.store.client("c1").await.unwrap(), Some(client.clone()));
    assert_eq!(test.store.client("c2").await.unwrap(), None);
    assert_eq!(test.store.clients().await.unwrap(), vec![client]);
}

async fn client_id_is_unique(test: TestStore) {
    test.store
        .insert_client(&sample_client("c1"))
        .await
        .unwrap();
    let err = test
        .store
        .insert_client(&sample_client("c1"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err:?}");
}

async fn client_update_replaces_fields(test: TestStore) {
    test.store
        .insert_client(&sample_client("c1"))
        .await
        .unwrap();
    let mut changed = sample_client("c1");
    changed.name = "Renamed".into();
    changed.redirect_uris = vec!["https://new.test/cb".into()];
    changed.auth_method = AuthMethod::None;
    changed.secret_digest = None;
    changed.first_party = false;
    changed.allowed_origins = vec!["http://localhost:3000".into()];
    changed.access_token_ttl_seconds = None;
    changed.refresh_token_idle_ttl_seconds = Some(60);
    changed.refresh_token_absolute_ttl_seconds = None;
    changed.updated_at = at(60);
    test.store.update_client(&changed).await.unwrap();
    assert_eq!(test.store.client("c1").await.unwrap(), Some(changed));
}

async fn allowed_origins_are_the_union(test: TestStore) {
    assert!(test.store.allowed_origins().await.unwrap().is_empty());
    let mut first = sample_client("c1");
    first.allowed_origins = vec!["https://b.test".into(), "https://a.test".into()];
    let mut second = sample_client("c2");
    second.allowed_origins = vec!["https://b.test".into(), "http://localhost:3000".into()];
    let mut third = sample_client("c3");
    third.allowed_origins = Vec::new();
    for client in [&first, &second, &third] {
        test.store.insert_client(client).await.unwrap();
    }
    assert_eq!(
        test.store.allowed_origins().await.unwrap(),
        vec!["http://localhost:3000", "https://a.test", "https://b.test"]
    );

    test.store.delete_client("c2").await.unwrap();
    assert_eq!(
        test.store.allowed_origins().await.unwrap(),
        vec!["https://a.test", "https://b.test"]
    );
}

async fn client_update_of_unknown_id_fails(test: TestStore) {
    let err = test
        .store
        .update_client(&sample_client("nobody"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
}

async fn client_secret_is_replaced(test: TestStore) {
    test.store
        .insert_client(&sample_client("c1"))
        .await
        .unwrap();
    test.store
        .set_client_secret("c1", "digest-2", at(30))
        .await
        .unwrap();
    let stored = test.store.client("c1").await.unwrap().unwrap();
    assert_eq!(stored.secret_digest.as_deref(), Some("digest-2"));
    assert_eq!(stored.updated_at, at(30));
    let err = test
        .store
        .set_client_secret("nobody", "d", at(30))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
}

async fn client_delete_reports_existence(test: TestStore) {
    test.store
        .insert_client(&sample_client("c1"))
        .await
        .unwrap();
    assert!(test.store.delete_client("c1").await.unwrap());
    assert!(!test.store.delete_client("c1").await.unwrap());
    assert_eq!(test.store.client("c1").await.unwrap(), None);
}

async fn client_writes_bump_generation(test: TestStore) {
    let store = &test.store;
    let start = store.generation(CLIENTS_TOPIC).await.unwrap();
    store.insert_client(&sample_client("c1")).await.unwrap();
    assert_eq!(store.generation(CLIENTS_TOPIC).await.unwrap(), start + 1);
    store.update_client(&sample_client("c1")).await.unwrap();
    store.set_client_secret("c1", "d", at(1)).await.unwrap();
    store.delete_client("c1").await.unwrap();
    assert_eq!(store.generation(CLIENTS_TOPIC).await.unwrap(), start + 4);
    assert_eq!(store.generation(RESOURCES_TOPIC).await.unwrap(), 0);
}

fn token(digest: &str, uses: i64, expires_at: chrono::DateTime<Utc>) -> InitialAccessToken {
    InitialAccessToken {
        digest: digest.to_owned(),
        remaining_uses: uses,
        expires_at,
        created_at: at(0),
    }
}

async fn initial_access_token_counts_uses(test: TestStore) {
    let store = &test.store;
    store
        .insert_initial_access_token(&token("t1", 2, at(3600)))
        .await
        .unwrap();
    assert!(store
        .consume_initial_access_token("t1", at(1))
        .await
        .unwrap());
    assert!(store
        .consume_initial_access_token("t1", at(2))
        .await
        .unwrap());
    assert!(!store
        .consume_initial_access_token("t1", at(3))
        .await
        .unwrap());
    assert!(!store
        .consume_initial_access_token("other", at(3))
        .await
        .unwrap());
}

async fn initial_access_token_expires(test: TestStore) {
    let store = &test.store;
    store
        .insert_initial_access_token(&token("t1", 5, at(60)))
        .await
        .unwrap();
    assert!(!store
        .consume_initial_access_token("t1", at(60))
        .await
        .unwrap());
    assert!(store
        .consume_initial_access_token("t1", at(59))
        .await
        .unwrap());
}

async fn concurrent_token_uses_respect_limit(test: TestStore) {
    test.store
        .insert_initial_access_token(&token("t1", 3, at(3600)))
        .await
        .unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(12));
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let store = Arc::clone(&test.store);
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store
                .consume_initial_access_token("t1", at(1))
                .await
                .unwrap()
        }));
    }
    let mut successes = 0;
    for task in tasks {
        if task.await.unwrap() {
            successes += 1;
        }
    }
    assert_eq!(successes, 3);
}

async fn resource_server_round_trips(test: TestStore) {
    let inline = sample_resource("https://rs1.test/", "i1");
    let mut fetched = sample_resource("https://rs2.test/", "i2");
    fetched.encryption_key = EncryptionKeySource::JwksUri("https://rs2.test/jwks".into());
    fetched.access_token_ttl_seconds = None;
    test.store.insert_resource_server(&inline).await.unwrap();
    test.store.insert_resource_server(&fetched).await.unwrap();
    assert_eq!(
        test.store
            .resource_server("https://rs1.test/")
            .await
            .unwrap(),
        Some(inline.clone())
    );
    assert_eq!(
        test.store.resource_servers().await.unwrap(),
        vec![inline, fetched]
    );
    assert!(test
        .store
        .delete_resource_server("https://rs1.test/")
        .await
        .unwrap());
    assert!(!test
        .store
        .delete_resource_server("https://rs1.test/")
        .await
        .unwrap());
}

async fn resource_server_identifier_is_unique(test: TestStore) {
    let store = &test.store;
    store
        .insert_resource_server(&sample_resource("https://rs1.test/", "i1"))
        .await
        .unwrap();
    let err = store
        .insert_resource_server(&sample_resource("https://rs1.test/", "i2"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err:?}");
    let err = store
        .insert_resource_server(&sample_resource("https://rs2.test/", "i1"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err:?}");
}

async fn resource_server_found_by_introspection_client(test: TestStore) {
    let resource = sample_resource("https://rs1.test/", "i1");
    test.store.insert_resource_server(&resource).await.unwrap();
    let found = test
        .store
        .resource_server_by_introspection_client("i1")
        .await
        .unwrap();
    assert_eq!(found, Some(resource));
    let missing = test
        .store
        .resource_server_by_introspection_client("i2")
        .await
        .unwrap();
    assert_eq!(missing, None);
}

async fn resource_writes_bump_generation(test: TestStore) {
    let store = &test.store;
    store
        .insert_resource_server(&sample_resource("https://rs1.test/", "i1"))
        .await
        .unwrap();
    store
        .delete_resource_server("https://rs1.test/")
        .await
        .unwrap();
    assert_eq!(store.generation(RESOURCES_TOPIC).await.unwrap(), 2);
    assert_eq!(store.generation(CLIENTS_TOPIC).await.unwrap(), 0);
}
