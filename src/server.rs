//! The HTTP server: shared state, binding, and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;

use crate::clock::Clock;
use crate::config::Config;
use crate::crypto::DataKeys;
use crate::keys::KeyRing;
use crate::store::Store;

/// State shared by every request handler.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    /// Digests bearer secrets and seals private keys.
    pub data_keys: DataKeys,
    /// Cached clients and resource servers, and fetched client key sets.
    pub registry: crate::registry::Registry,
    /// Tessera's signing and encryption keys, kept loaded by the key manager.
    pub keys: Arc<KeyRing>,
    /// Password hashing and login throttling.
    pub accounts: Arc<crate::accounts::Accounts>,
    /// Request rate limits, built from `config.rate_limits`.
    pub rate_limits: Arc<crate::http::rate_limit::RateLimits>,
}

/// A server bound to its listener and ready to run.
pub struct Server {
    listener: TcpListener,
    router: Router,
    state: AppState,
}

impl Server {
    /// Binds `addr` (port 0 picks a free port, see [`Server::local_addr`]).
    pub async fn bind(state: AppState, addr: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let router = crate::http::router(state.clone());
        Ok(Self {
            listener,
            router,
            state,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes, then stops accepting, lets
    /// in-flight requests finish, and closes the store's pool.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let sweeper = tokio::spawn(Arc::clone(&self.state.rate_limits).sweep_forever());
        let service = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        let served = axum::serve(self.listener, service)
            .with_graceful_shutdown(shutdown)
            .await;
        sweeper.abort();
        self.state.store.close().await;
        served
    }
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        () = interrupt => tracing::info!("received SIGINT, shutting down"),
        () = terminate => tracing::info!("received SIGTERM, shutting down"),
    }
}
