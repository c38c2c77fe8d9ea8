//! `GET /jwks` and `HEAD /jwks`: cache headers, ETags, public members only
//! through a whole rotation cycle, and agreement between instances.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use reqwest::StatusCode;
use serde_json::Value;
use tessera::clock::{Clock, SystemClock};
use tessera::config::Config;
use tessera::crypto::{DataKeys, MasterKey};
use tessera::keys::{EncryptionAlg, KeyAlg, KeyRing, SigningAlg};
use tessera::server::{AppState, Server, SharedState};
use tessera::store;
use tessera::store::group_commit::AccessTokenWriter;

use crate::harness::{Backend, TestApp, TestStore};

/// Members a published key may carry: RFC 7517 and RFC 7518 public ones.
const PUBLIC_MEMBERS: [&str; 9] = ["kty", "kid", "use", "alg", "n", "e", "crv", "x", "y"];

async fn fetch(app: &TestApp) -> (reqwest::header::HeaderMap, Value) {
    let response = app.get("/jwks").await;
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    (headers, response.json().await.unwrap())
}

/// Checks every key's members and returns the kids.
fn check_keys(document: &Value) -> BTreeSet<String> {
    let keys = document["keys"].as_array().unwrap();
    let mut kids = BTreeSet::new();
    for key in keys {
        let members: Vec<&String> = key.as_object().unwrap().keys().collect();
        for member in &members {
            assert!(
                PUBLIC_MEMBERS.contains(&member.as_str()),
                "{member} in {key}"
            );
        }
        let kid = key["kid"].as_str().unwrap().to_owned();
        let alg = key["alg"].as_str().unwrap();
        let expected_use = if alg.contains("ECDH") || alg.starts_with("RSA-OAEP") {
            "enc"
        } else {
            "sig"
        };
        assert_eq!(key["use"], expected_use, "{key}");
        assert!(kids.insert(kid), "duplicate kid in {document}");
    }
    kids
}

/// Returns the kids the store publishes now.
async fn stored_kids(app: &TestApp) -> BTreeSet<String> {
    let now = SystemClock.now();
    app.store
        .store
        .jose_keys()
        .await
        .unwrap()
        .into_iter()
        .filter(|key| tessera::keys::lifecycle::is_published(&key.times, now))
        .map(|key| key.kid)
        .collect()
}

#[tokio::test]
async fn jwks_serves_public_keys_with_cache_headers() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (headers, document) = fetch(&app).await;
    assert_eq!(headers[CONTENT_TYPE], "application/json");
    assert_eq!(headers[CACHE_CONTROL], "public, max-age=300");
    let etag = headers[ETAG].to_str().unwrap();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");

    // Next and current for RS256, ES256 and the encryption key.
    let kids = check_keys(&document);
    assert_eq!(kids.len(), 6);
    assert_eq!(kids, stored_kids(&app).await);
    let algs: Vec<&str> = document["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["alg"].as_str().unwrap())
        .collect();
    for alg in ["RS256", "ES256", "ECDH-ES+A256KW"] {
        assert_eq!(algs.iter().filter(|a| **a == alg).count(), 2, "{alg}");
    }
}

#[tokio::test]
async fn jwks_etag_answers_not_modified() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (headers, _) = fetch(&app).await;
    let etag = headers[ETAG].to_str().unwrap().to_owned();

    for candidate in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"other\", {etag}"),
        "*".into(),
    ] {
        let response = app
            .client
            .get(app.url("/jwks"))
            .header(IF_NONE_MATCH, &candidate)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED, "{candidate}");
        assert_eq!(response.headers()[ETAG], etag.as_str());
        assert_eq!(response.headers()[CACHE_CONTROL], "public, max-age=300");
        assert!(response.bytes().await.unwrap().is_empty());
    }
    let stale = app
        .client
        .get(app.url("/jwks"))
        .header(IF_NONE_MATCH, "\"stale\"")
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::OK);
}

#[tokio::test]
async fn head_jwks_sends_headers_without_body() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (get_headers, _) = fetch(&app).await;
    let response = app.client.head(app.url("/jwks")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    assert_eq!(response.headers()[ETAG], get_headers[ETAG]);
    assert_eq!(
        response.headers()[CACHE_CONTROL],
        get_headers[CACHE_CONTROL]
    );
    if let Some(length) = response.headers().get(CONTENT_LENGTH) {
        assert_eq!(length, get_headers[CONTENT_LENGTH]);
    }
    assert!(response.bytes().await.unwrap().is_empty());
}

/// Through forced rotations of every slot and revocations of a current and
/// a retired key, the JWKS lists exactly the published keys, public members
/// only, and its ETag changes with every change.
#[tokio::test]
async fn jwks_stays_public_through_rotation_cycle() {
    let mut config = Config::default();
    config.keys.signing_algs = vec![SigningAlg::RS256, SigningAlg::ES256, SigningAlg::EdDSA];
    config.keys.encryption_alg = EncryptionAlg::RsaOaep256;
    let store = TestStore::new(Backend::Sqlite).await;
    let app = TestApp::spawn_configured(store, config, Arc::new(SystemClock)).await;
    let mut etags = BTreeSet::new();

    let mut check = |headers: &reqwest::header::HeaderMap| {
        let etag = headers[ETAG].to_str().unwrap().to_owned();
        assert!(etags.insert(etag), "ETag repeated after a change");
    };
    let (headers, document) = fetch(&app).await;
    check(&headers);
    assert_eq!(check_keys(&document), stored_kids(&app).await);

    app.keys.rotate(None, true).await.unwrap();
    let (headers, document) = fetch(&app).await;
    check(&headers);
    // Retired, current and next for each signing algorithm, plus two
    // encryption keys.
    assert_eq!(check_keys(&document).len(), 11);
    assert_eq!(check_keys(&document), stored_kids(&app).await);

    let enc = KeyAlg::Encryption(EncryptionAlg::RsaOaep256);
    app.keys.rotate(Some(enc), true).await.unwrap();
    let (headers, document) = fetch(&app).await;
    check(&headers);
    assert_eq!(check_keys(&document), stored_kids(&app).await);

    let now = SystemClock.now();
    let ring = app.keys.ring();
    let snapshot = ring.snapshot().unwrap();
    let current = snapshot
        .current(KeyAlg::Signing(SigningAlg::ES256), now)
        .unwrap()
        .kid
        .clone();
    let retired = snapshot
        .keys()
        .iter()
        .find(|key| {
            key.alg == KeyAlg::Signing(SigningAlg::RS256)
                && key.state(now) == tessera::keys::KeyState::Retired
        })
        .unwrap()
        .kid
        .clone();
    for kid in [current, retired] {
        app.keys.revoke(&kid).await.unwrap();
        let (headers, document) = fetch(&app).await;
        check(&headers);
        let kids = check_keys(&document);
        assert!(!kids.contains(&kid), "{kid} still published");
        assert_eq!(kids, stored_kids(&app).await);
    }
}

/// Two instances on one PostgreSQL serve the same document, and a change
/// made through one reaches the other within two seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_serve_the_same_jwks() {
    let first_store = TestStore::new(Backend::Postgres).await;
    let url = first_store.url.clone();
    let second_store = TestStore {
        store: store::open(&url).await.unwrap(),
        url,
        _folder: None,
    };
    let config = Config {
        master_key: Some(tessera::secret::SecretString::new(
            MasterKey::generate().to_base64().to_string(),
        )),
        ..Config::default()
    };
    let clock = Arc::new(SystemClock);
    let first = TestApp::spawn_configured(first_store, config.clone(), clock.clone()).await;
    let second = TestApp::spawn_configured(second_store, config, clock).await;

    let (first_headers, first_document) = fetch(&first).await;
    let (second_headers, second_document) = fetch(&second).await;
    assert_eq!(first_document, second_document);
    assert_eq!(first_headers[ETAG], second_headers[ETAG]);

    first.keys.rotate(None, true).await.unwrap();
    let (changed, _) = fetch(&first).await;
    assert_ne!(changed[ETAG], first_headers[ETAG]);
    let started = std::time::Instant::now();
    loop {
        let (headers, _) = fetch(&second).await;
        if headers[ETAG] == changed[ETAG] {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "second instance still serves the old JWKS"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Before its key ring is loaded an instance is not ready and serves no
/// JWKS, rather than an empty one that verifiers would cache.
#[tokio::test]
async fn unloaded_key_ring_is_not_ready() {
    let test = TestStore::new(Backend::Sqlite).await;
    let data_keys = DataKeys::load_or_create(
        test.store.as_ref(),
        &MasterKey::generate(),
        SystemClock.now(),
    )
    .await
    .unwrap();
    let state = AppState::from(SharedState {
        config: Arc::new(Config::default()),
        store: test.store.clone(),
        access_tokens: AccessTokenWriter::spawn(test.store.clone()),
        clock: Arc::new(SystemClock),
        data_keys,
        registry: tessera::registry::Registry::new(
            test.store.clone(),
            Arc::new(SystemClock),
            &Config::default().cache,
        ),
        keys: Arc::new(KeyRing::new()),
        rate_limits: Arc::new(tessera::http::rate_limit::RateLimits::new(
            &Config::default().rate_limits,
        )),
        accounts: Arc::new(
            tessera::accounts::Accounts::new(&Config::default())
                .await
                .unwrap(),
        ),
    });
    let server = Server::bind(state, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let address = server.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async {
        stopped.await.ok();
    }));
    let client = reqwest::Client::new();

    let ready = client
        .get(format!("http://{address}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["reason"], "key ring not loaded");
    let jwks = client
        .get(format!("http://{address}/jwks"))
        .send()
        .await
        .unwrap();
    assert_eq!(jwks.status(), StatusCode::SERVICE_UNAVAILABLE);
    stop.send(()).ok();
}
