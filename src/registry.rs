//! In-memory cache of clients and resource servers for the hot path, and
//! of the union of every client's allowed origins, which CORS preflights
//! need because they name no client.
//!
//! Entries live at most [`ENTRY_TTL`], and each cache keeps at most the
//! configured number (`cache.max_clients`, `cache.max_resources`): past it,
//! the entry loaded longest ago is dropped. A task polls the store's change
//! counters (`clients`, `resources`) every [`POLL_INTERVAL`] and empties a
//! cache when its counter moved, so a change made by the CLI or another
//! instance is seen within about two poll intervals. The origin union is
//! emptied with the client cache. A miss reads the
//! store; an unknown id is never cached, so a client created elsewhere is
//! found on its first use.

use std::collections::HashSet;
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use hashlink::LruCache;

use crate::clock::Clock;
use crate::config::CacheSettings;
use crate::crypto::Digester;
use crate::public_keys::{FetchError, KeyPurpose, KeySetFetcher};
use crate::store::{
    Client, EncryptionKeySource, ResourceServer, Store, StoreError, CLIENTS_TOPIC, RESOURCES_TOPIC,
};
use crate::tokens::recipients::RecipientCache;

/// How often the change counters are read.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Maximum time an entry is served without reading the store again.
pub const ENTRY_TTL: Duration = Duration::from_secs(300);
/// Key of the one entry in the origin cache.
const ALL_ORIGINS: &str = "";

/// Cached clients and resource servers, cheap to clone.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    clients: RwLock<Cache<Client>>,
    /// One entry, [`ALL_ORIGINS`]: every origin that some client allows.
    origins: RwLock<Cache<HashSet<String>>>,
    resources: RwLock<Cache<ResourceServer>>,
    key_sets: KeySetFetcher,
    recipients: RecipientCache,
}

struct Cache<T> {
    /// Reads use `peek`, which leaves the order alone, so the entry
    /// dropped first is the one loaded longest ago.
    entries: LruCache<String, (Arc<T>, Instant)>,
    /// Last change counter read from the store.
    generation: Option<i64>,
    /// Incremented on every clear, so a store read that raced a clear is
    /// not cached.
    epoch: u64,
}

impl<T> Cache<T> {
    fn new(max_entries: usize) -> Self {
        Self {
            entries: LruCache::new(max_entries),
            generation: None,
            epoch: 0,
        }
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.epoch += 1;
    }
}

impl Registry {
    /// Creates the cache and, inside a Tokio runtime, starts its poller,
    /// which stops when the last clone of the registry is dropped.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, limits: &CacheSettings) -> Self {
        let inner = Arc::new(Inner {
            store,
            clients: RwLock::new(Cache::new(limits.max_clients)),
            origins: RwLock::new(Cache::new(1)),
            resources: RwLock::new(Cache::new(limits.max_resources)),
            key_sets: KeySetFetcher::new(clock),
            recipients: RecipientCache::default(),
        });
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(poll(Arc::downgrade(&inner)));
            }
            Err(_) => tracing::warn!(
                "no async runtime: the client cache will not follow other instances' changes"
            ),
        }
        Self { inner }
    }

    /// Fetches and caches JWK Sets from `jwks_uri`s.
    pub fn key_sets(&self) -> &KeySetFetcher {
        &self.inner.key_sets
    }

    /// Returns the client `client_id`, from the cache or the store.
    pub async fn client(&self, client_id: &str) -> Result<Option<Arc<Client>>, StoreError> {
        let store = Arc::clone(&self.inner.store);
        let id = client_id.to_owned();
        lookup(&self.inner.clients, client_id, || async move {
            store.client(&id).await
        })
        .await
    }

    /// Returns whether some client allows `origin`, from the cache or the
    /// store. Origins are compared byte for byte, as registered.
    pub async fn origin_allowed_by_any_client(&self, origin: &str) -> Result<bool, StoreError> {
        let store = Arc::clone(&self.inner.store);
        let origins = lookup(&self.inner.origins, ALL_ORIGINS, || async move {
            let origins = store.allowed_origins().await?;
            Ok(Some(origins.into_iter().collect()))
        })
        .await?;
        Ok(origins.is_some_and(|origins| origins.contains(origin)))
    }

    /// Returns the resource server `identifier`, from the cache or the store.
    pub async fn resource_server(
        &self,
        identifier: &str,
    ) -> Result<Option<Arc<ResourceServer>>, StoreError> {
        let store = Arc::clone(&self.inner.store);
        let id = identifier.to_owned();
        lookup(&self.inner.resources, identifier, || async move {
            store.resource_server(&id).await
        })
        .await
    }

    /// Returns the cached encrypters for access-token recipients' keys.
    pub fn recipients(&self) -> &RecipientCache {
        &self.inner.recipients
    }

    /// Returns the public key to encrypt `resource`'s access tokens to: its
    /// inline JWK, or the first key of its fetched set. An error means the
    /// resource server has no usable key, so no token may be issued for it.
    pub async fn encryption_key(
        &self,
        resource: &ResourceServer,
    ) -> Result<serde_json::Map<String, serde_json::Value>, FetchError> {
        match &resource.encryption_key {
            EncryptionKeySource::Jwk(serde_json::Value::Object(jwk)) => Ok(jwk.clone()),
            EncryptionKeySource::Jwk(_) => Err(FetchError::Failed {
                url: resource.identifier.clone(),
                message: "the stored encryption key is not a JSON object".into(),
            }),
            EncryptionKeySource::JwksUri(url) => {
                let keys = self.key_sets().keys(url, KeyPurpose::Encryption).await?;
                keys.into_iter().next().ok_or_else(|| FetchError::Failed {
                    url: url.clone(),
                    message: "the JWK Set has no encryption key".into(),
                })
            }
        }
    }

    /// Returns the client if `secret` is its current secret.
    pub async fn authenticate_secret(
        &self,
        client_id: &str,
        secret: &str,
        digester: &Digester,
    ) -> Result<Option<Arc<Client>>, StoreError> {
        let client = self.client(client_id).await?;
        Ok(client.filter(|client| crate::clients::verify_secret(client, secret, digester)))
    }

    /// Drops every cached client and the origin union; for writes made
    /// through this instance.
    pub fn invalidate_clients(&self) {
        write(&self.inner.clients).clear();
        write(&self.inner.origins).clear();
    }

    /// Drops every cached resource server.
    pub fn invalidate_resources(&self) {
        write(&self.inner.resources).clear();
    }
}

fn write<T>(lock: &RwLock<Cache<T>>) -> std::sync::RwLockWriteGuard<'_, Cache<T>> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn read<T>(lock: &RwLock<Cache<T>>) -> std::sync::RwLockReadGuard<'_, Cache<T>> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn lookup<T, F, Fut>(
    cache: &RwLock<Cache<T>>,
    id: &str,
    load: F,
) -> Result<Option<Arc<T>>, StoreError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, StoreError>>,
{
    let epoch = {
        let cache = read(cache);
        if let Some((value, loaded_at)) = cache.entries.peek(id) {
            if loaded_at.elapsed() < ENTRY_TTL {
                return Ok(Some(Arc::clone(value)));
            }
        }
        cache.epoch
    };
    let Some(value) = load().await? else {
        return Ok(None);
    };
    let value = Arc::new(value);
    let mut cache = write(cache);
    if cache.epoch == epoch {
        cache
            .entries
            .insert(id.to_owned(), (Arc::clone(&value), Instant::now()));
    }
    Ok(Some(value))
}

/// Reads the change counters every poll interval until the registry is gone.
async fn poll(inner: Weak<Inner>) {
    loop {
        tokio::time::sleep(POLL_INTERVAL).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        if refresh(&inner.store, &inner.clients, CLIENTS_TOPIC).await {
            write(&inner.origins).clear();
        }
        refresh(&inner.store, &inner.resources, RESOURCES_TOPIC).await;
    }
}

/// Empties `cache` when the change counter of `topic` moved; returns
/// whether it did.
async fn refresh<T>(store: &Arc<dyn Store>, cache: &RwLock<Cache<T>>, topic: &str) -> bool {
    match store.generation(topic).await {
        Ok(generation) => {
            let mut cache = write(cache);
            let moved = cache.generation != Some(generation);
            if moved {
                cache.clear();
                cache.generation = Some(generation);
            }
            moved
        }
        Err(error) => {
            tracing::warn!(%error, topic, "cannot read change counter; cached entries expire after their lifetime");
            false
        }
    }
}
