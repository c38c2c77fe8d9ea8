//! JWK Sets fetched from a `jwks_uri`: caching, the refetch limit for
//! unknown `kid`s, shared fetches, failures and private material. The key
//! server is a real HTTP server on a loopback port that counts requests.

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use josekit::jwk::alg::ec::EcCurve;
use josekit::jwk::Jwk;
use serde_json::{json, Value};
use tessera::clock::ManualClock;
use tessera::public_keys::{KeyPurpose, KeySetFetcher};

use crate::harness::key_server::KeyServer;

fn public_key(kid: &str) -> Value {
    let mut key = Jwk::generate_ec_key(EcCurve::P256)
        .unwrap()
        .to_public_key()
        .unwrap();
    key.set_key_id(kid);
    Value::Object(key.as_ref().clone())
}

fn private_key(kid: &str) -> Value {
    let mut key = Jwk::generate_ec_key(EcCurve::P256).unwrap();
    key.set_key_id(kid);
    Value::Object(key.as_ref().clone())
}

fn fetcher() -> (KeySetFetcher, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(
        Utc.timestamp_opt(1_800_000_000, 0).unwrap(),
    ));
    (KeySetFetcher::new(clock.clone()), clock)
}

fn kids(keys: &[serde_json::Map<String, Value>]) -> Vec<String> {
    keys.iter()
        .map(|key| key["kid"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn unknown_kids_refetch_at_most_once_per_minute() {
    let server = KeyServer::start(json!({ "keys": [public_key("k3")] })).await;
    server.set_cache_control("public, max-age=3600");
    let (fetcher, clock) = fetcher();
    let url = server.url();

    let found = fetcher
        .candidates(&url, KeyPurpose::Signature, Some("k3"))
        .await
        .unwrap();
    assert_eq!(kids(&found), vec!["k3"]);
    assert_eq!(server.hits(), 1);

    // 1,000 unknown kids, then 1,000 requests without a kid, within the
    // cooldown: no further download, and the known key stays usable.
    for index in 0..1000 {
        let kid = format!("random-{index}");
        let found = fetcher
            .candidates(&url, KeyPurpose::Signature, Some(&kid))
            .await
            .unwrap();
        assert!(found.is_empty());
    }
    for _ in 0..1000 {
        let found = fetcher
            .candidates(&url, KeyPurpose::Signature, None)
            .await
            .unwrap();
        assert_eq!(found.len(), 1);
    }
    assert_eq!(server.hits(), 1);
    let known = fetcher
        .candidates(&url, KeyPurpose::Signature, Some("k3"))
        .await
        .unwrap();
    assert_eq!(kids(&known), vec!["k3"]);

    // After the cooldown, one unknown kid refetches once.
    clock.advance(Duration::seconds(61));
    for index in 0..100 {
        let kid = format!("later-{index}");
        fetcher
            .candidates(&url, KeyPurpose::Signature, Some(&kid))
            .await
            .unwrap();
    }
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn added_key_is_found_after_the_cooldown() {
    let server = KeyServer::start(json!({ "keys": [public_key("k3")] })).await;
    let (fetcher, clock) = fetcher();
    let url = server.url();
    fetcher.keys(&url, KeyPurpose::Signature).await.unwrap();

    server.set_body(json!({ "keys": [public_key("k3"), public_key("k3b")] }));
    let early = fetcher
        .candidates(&url, KeyPurpose::Signature, Some("k3b"))
        .await
        .unwrap();
    assert!(early.is_empty());

    clock.advance(Duration::seconds(60));
    let later = fetcher
        .candidates(&url, KeyPurpose::Signature, Some("k3b"))
        .await
        .unwrap();
    assert_eq!(kids(&later), vec!["k3b"]);
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn concurrent_misses_share_one_fetch() {
    let server = KeyServer::start(json!({ "keys": [public_key("k1")] })).await;
    let (fetcher, _clock) = fetcher();
    let url = server.url();
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let fetcher = fetcher.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            fetcher
                .candidates(&url, KeyPurpose::Signature, Some("k1"))
                .await
                .unwrap()
                .len()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 1);
    }
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn cached_set_outlives_source_failure_until_expiry() {
    let server = KeyServer::start(json!({ "keys": [public_key("k1")] })).await;
    server.set_cache_control("max-age=600");
    let (fetcher, clock) = fetcher();
    let url = server.url();
    fetcher.keys(&url, KeyPurpose::Signature).await.unwrap();

    server.set_status(503);
    clock.advance(Duration::seconds(120));
    let during_outage = fetcher
        .candidates(&url, KeyPurpose::Signature, Some("unknown"))
        .await
        .unwrap();
    assert!(during_outage.is_empty());
    let still_cached = fetcher
        .candidates(&url, KeyPurpose::Signature, Some("k1"))
        .await
        .unwrap();
    assert_eq!(still_cached.len(), 1);
    assert_eq!(server.hits(), 2);

    clock.advance(Duration::seconds(600));
    let expired = fetcher
        .candidates(&url, KeyPurpose::Signature, Some("k1"))
        .await;
    assert!(expired.is_err());
}

#[tokio::test]
async fn fetched_set_with_private_key_fails() {
    let server = KeyServer::start(json!({ "keys": [public_key("k1"), private_key("k2")] })).await;
    let (fetcher, _clock) = fetcher();
    let err = fetcher
        .candidates(&server.url(), KeyPurpose::Signature, Some("k1"))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("private member"), "{message}");
}

#[tokio::test]
async fn non_loopback_http_is_not_fetched() {
    let (fetcher, _clock) = fetcher();
    let err = fetcher
        .keys("http://keys.example.test/jwks", KeyPurpose::Signature)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not allowed"), "{err}");
}

#[tokio::test]
async fn private_key_for_other_purpose_still_fails() {
    let mut encryption = private_key("enc-1");
    encryption["use"] = json!("enc");
    let server = KeyServer::start(json!({ "keys": [public_key("k1"), encryption] })).await;
    let (fetcher, _clock) = fetcher();
    let err = fetcher
        .keys(&server.url(), KeyPurpose::Signature)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("private member"), "{err}");
}

#[tokio::test]
async fn keys_for_other_purpose_are_skipped() {
    let mut encryption = public_key("enc-1");
    encryption["use"] = json!("enc");
    let mut oaep = public_key("enc-2");
    oaep["alg"] = json!("ECDH-ES+A256KW");
    let server = KeyServer::start(json!({ "keys": [public_key("k1"), encryption, oaep] })).await;
    let (fetcher, _clock) = fetcher();
    let keys = fetcher
        .keys(&server.url(), KeyPurpose::Signature)
        .await
        .unwrap();
    assert_eq!(kids(&keys), vec!["k1"]);
}
