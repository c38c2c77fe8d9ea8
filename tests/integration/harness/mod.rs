//! Test harness: stores on both backends and a real server on port 0.

pub mod instance;
pub mod key_server;
pub mod postgres;
pub mod process;

use std::net::SocketAddr;
use std::sync::Arc;

use tessera::clock::{Clock, SystemClock};
use tessera::config::Config;
use tessera::crypto::{DataKeys, MasterKey};
use tessera::http::rate_limit::RateLimits;
use tessera::keys::{KeyManager, KeySettings};
use tessera::server::{AppState, Server, SharedState};
use tessera::store::group_commit::AccessTokenWriter;
use tessera::store::{self, Store};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The two store backends every conformance test runs against.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A migrated store of `backend` with a fresh database, and its URL. The
/// SQLite file lives as long as the returned folder.
pub struct TestStore {
    pub store: Arc<dyn Store>,
    pub url: String,
    pub _folder: Option<tempfile::TempDir>,
}

impl TestStore {
    pub async fn new(backend: Backend) -> Self {
        let (url, folder) = match backend {
            Backend::Sqlite => {
                let folder = tempfile::tempdir().expect("temporary folder");
                let url = format!("sqlite://{}", folder.path().join("tessera.db").display());
                (url, Some(folder))
            }
            Backend::Postgres => (postgres::fresh_database().await, None),
        };
        let store = store::open(&url).await.expect("store opens");
        store.migrate().await.expect("migrations apply");
        Self {
            store,
            url,
            _folder: folder,
        }
    }
}

/// Logs go to the test output only when `TEST_LOG` is set.
pub fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        tessera::telemetry::init(tessera::config::LogFormat::Text);
    }
}

/// A Tessera server running in this process on a free loopback port.
pub struct TestApp {
    pub address: SocketAddr,
    pub client: reqwest::Client,
    /// The store behind the server; it also keeps a SQLite folder alive.
    #[allow(dead_code)]
    pub store: TestStore,
    /// Base64 master key of the server, for CLI runs against its store.
    #[allow(dead_code)]
    pub master_key: String,
    /// The server's state, for checks through its caches and data keys.
    #[allow(dead_code)]
    pub state: AppState,
    /// The key manager whose ring the server uses; its scheduler task runs.
    #[allow(dead_code)]
    pub keys: Arc<KeyManager>,
    scheduler: tokio::task::AbortHandle,
    shutdown: Option<oneshot::Sender<()>>,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(TestStore::new(backend).await).await
    }

    pub async fn spawn_with(store: TestStore) -> Self {
        Self::spawn_configured(store, Config::default(), Arc::new(SystemClock)).await
    }

    /// Starts a server on `store` with `config` (its `database_url` is set
    /// to the store's).
    #[allow(dead_code)]
    pub async fn spawn_with_config(store: TestStore, config: Config) -> Self {
        Self::spawn_configured(store, config, Arc::new(SystemClock)).await
    }

    /// Starts a server on `store` with `config` (its `database_url` is set
    /// to the store's) and `clock`.
    pub async fn spawn_configured(store: TestStore, config: Config, clock: Arc<dyn Clock>) -> Self {
        let listener = bind_loopback().await;
        Self::start(store, config, clock, listener).await
    }

    /// Starts a server whose configured `issuer` and `listen` are the
    /// loopback address it listens on. Relying parties that compare the
    /// discovery document's `issuer` with the URL they fetched need this.
    #[allow(dead_code)]
    pub async fn spawn_at_own_issuer(store: TestStore, config: Config) -> Self {
        let listener = bind_loopback().await;
        let address = listener.local_addr().expect("local address");
        let config = Config {
            issuer: format!("http://{address}"),
            listen: address,
            ..config
        };
        Self::start(store, config, Arc::new(SystemClock), listener).await
    }

    async fn start(
        store: TestStore,
        config: Config,
        clock: Arc<dyn Clock>,
        listener: TcpListener,
    ) -> Self {
        init_logs();
        let config = Config {
            database_url: Some(store.url.clone()),
            ..config
        };
        let accounts = tessera::accounts::Accounts::new(&config)
            .await
            .expect("accounts set up");
        // Instances sharing a store share the master key given in `config`.
        let master_key = match config.master_key {
            Some(_) => MasterKey::load(&config, false).expect("master key loads"),
            None => MasterKey::generate(),
        };
        let data_keys = DataKeys::load_or_create(store.store.as_ref(), &master_key, clock.now())
            .await
            .expect("data keys load");
        let registry =
            tessera::registry::Registry::new(store.store.clone(), clock.clone(), &config.cache);
        let keys = Arc::new(KeyManager::new(
            store.store.clone(),
            data_keys.sealer.clone(),
            Arc::clone(&clock),
            KeySettings::from_config(&config),
        ));
        keys.bootstrap().await.expect("key ring loads");
        let scheduler = Arc::clone(&keys).spawn().abort_handle();
        let rate_limits = Arc::new(RateLimits::new(&config.rate_limits));
        let state = AppState::from(SharedState {
            rate_limits,
            config: Arc::new(config),
            store: store.store.clone(),
            access_tokens: AccessTokenWriter::spawn(store.store.clone()),
            clock,
            data_keys,
            registry,
            keys: keys.ring(),
            accounts: Arc::new(accounts),
        });
        let server = Server::from_listener(state.clone(), listener);
        let address = server.local_addr().expect("local address");
        let (shutdown, stopped) = oneshot::channel::<()>();
        tokio::spawn(server.run(async {
            stopped.await.ok();
        }));
        Self {
            address,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("HTTP client"),
            store,
            master_key: master_key.to_base64().to_string(),
            state,
            keys,
            scheduler,
            shutdown: Some(shutdown),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request is sent")
    }
}

/// Binds a free loopback port.
async fn bind_loopback() -> TcpListener {
    TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free loopback port binds")
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.scheduler.abort();
        if let Some(shutdown) = self.shutdown.take() {
            shutdown.send(()).ok();
        }
    }
}
