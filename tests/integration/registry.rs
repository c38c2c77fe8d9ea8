//! The client and resource-server cache across two instances sharing one
//! store: misses go to the store, unknown ids are not cached, a write
//! through one instance is seen by the other within 2 seconds, and a full
//! cache drops the entry loaded longest ago.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tessera::clock::SystemClock;
use tessera::config::CacheSettings;
use tessera::registry::{Registry, POLL_INTERVAL};
use tessera::store::Store;

use crate::harness::{Backend, TestStore};
use crate::store_conformance::clients::sample_client;

/// Waits up to 3 s for `client_id` to have `name` in `registry`; returns
/// the time it took.
async fn wait_for_name(registry: &Registry, client_id: &str, name: Option<&str>) -> Duration {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        let client = registry.client(client_id).await.unwrap();
        if client.as_ref().map(|client| client.name.as_str()) == name {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{client_id} did not reach {name:?} within 3 s");
}

async fn two_instances_share_changes(backend: Backend) {
    let test = TestStore::new(backend).await;
    let store: Arc<dyn Store> = Arc::clone(&test.store);
    let first = Registry::new(
        Arc::clone(&store),
        Arc::new(SystemClock),
        &CacheSettings::default(),
    );
    let second = Registry::new(
        Arc::clone(&store),
        Arc::new(SystemClock),
        &CacheSettings::default(),
    );

    // A miss is not cached: a client created afterwards is found at once.
    assert!(second.client("c1").await.unwrap().is_none());
    store.insert_client(&sample_client("c1")).await.unwrap();
    assert_eq!(second.client("c1").await.unwrap().unwrap().name, "Sample");
    assert!(first.client("c1").await.unwrap().is_some());

    // A change written by "another instance" reaches both caches.
    let mut renamed = sample_client("c1");
    renamed.name = "Renamed".into();
    store.update_client(&renamed).await.unwrap();
    first.invalidate_clients();
    assert_eq!(first.client("c1").await.unwrap().unwrap().name, "Renamed");
    let took = wait_for_name(&second, "c1", Some("Renamed")).await;
    assert!(took <= Duration::from_secs(2), "{backend:?}: took {took:?}");

    store.delete_client("c1").await.unwrap();
    let took = wait_for_name(&second, "c1", None).await;
    assert!(took <= Duration::from_secs(2), "{backend:?}: took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_share_changes_on_sqlite() {
    two_instances_share_changes(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_share_changes_on_postgres() {
    two_instances_share_changes(Backend::Postgres).await;
}

/// With room for two clients, loading a third drops the first. A rename
/// written with plain SQL, which leaves the change counter alone, shows
/// only for the client that has to be read from the store again.
#[tokio::test]
async fn full_cache_drops_oldest_client() {
    let test = TestStore::new(Backend::Sqlite).await;
    let store: Arc<dyn Store> = Arc::clone(&test.store);
    let ids = ["c1", "c2", "c3"];
    for id in ids {
        store.insert_client(&sample_client(id)).await.unwrap();
    }
    let limits = CacheSettings {
        max_clients: 2,
        ..CacheSettings::default()
    };
    let registry = Registry::new(Arc::clone(&store), Arc::new(SystemClock), &limits);
    // The first poll empties the cache once, on reading the counter.
    tokio::time::sleep(POLL_INTERVAL + Duration::from_millis(500)).await;
    for id in ids {
        registry.client(id).await.unwrap().unwrap();
    }

    let raw = sqlx::SqlitePool::connect(&test.url).await.unwrap();
    sqlx::query("UPDATE clients SET name = 'Renamed'")
        .execute(&raw)
        .await
        .unwrap();
    let name = |id| {
        let registry = registry.clone();
        async move { registry.client(id).await.unwrap().unwrap().name.clone() }
    };
    assert_eq!(name("c3").await, "Sample");
    assert_eq!(name("c2").await, "Sample");
    assert_eq!(name("c1").await, "Renamed");
}

#[tokio::test]
async fn encryption_key_comes_inline_or_fetched() {
    use crate::harness::key_server::KeyServer;
    use serde_json::{json, Value};
    use tessera::store::EncryptionKeySource;

    let test = TestStore::new(Backend::Sqlite).await;
    let registry = Registry::new(
        Arc::clone(&test.store),
        Arc::new(SystemClock),
        &CacheSettings::default(),
    );
    let key = josekit::jwk::Jwk::generate_ec_key(josekit::jwk::alg::ec::EcCurve::P256)
        .unwrap()
        .to_public_key()
        .unwrap();
    let mut key = Value::Object(key.as_ref().clone());
    key["kid"] = json!("enc-1");

    let mut inline = crate::store_conformance::clients::sample_resource("https://rs1.test/", "i1");
    inline.encryption_key = EncryptionKeySource::Jwk(key.clone());
    let found = registry.encryption_key(&inline).await.unwrap();
    assert_eq!(Value::Object(found), key);

    let server = KeyServer::start(json!({ "keys": [key.clone()] })).await;
    let mut fetched = inline.clone();
    fetched.encryption_key = EncryptionKeySource::JwksUri(server.url());
    let found = registry.encryption_key(&fetched).await.unwrap();
    assert_eq!(found["kid"], "enc-1");
    registry.encryption_key(&fetched).await.unwrap();
    assert_eq!(server.hits(), 1);

    let empty = KeyServer::start(json!({ "keys": [] })).await;
    fetched.encryption_key = EncryptionKeySource::JwksUri(empty.url());
    assert!(registry.encryption_key(&fetched).await.is_err());
}
