//! The HTTP server: shared state, binding, and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::serve::ListenerExt;
use axum::Router;
use tokio::net::TcpListener;
use tokio_rustls::rustls::ServerConfig;

use crate::clock::Clock;
use crate::config::Config;
use crate::crypto::DataKeys;
use crate::keys::KeyRing;
use crate::store::Store;
use crate::tls::TlsListener;

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
}

/// A server bound to its listener and ready to run.
pub struct Server {
    listener: TcpListener,
    router: Router,
    state: AppState,
    /// Serves HTTPS with this configuration when set, plain HTTP otherwise.
    tls: Option<Arc<ServerConfig>>,
}

impl Server {
    /// Binds `addr` (port 0 picks a free port, see [`Server::local_addr`]).
    pub async fn bind(state: AppState, addr: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        Ok(Self::from_listener(state, listener))
    }

    /// Serves on a listener bound by the caller, for callers that need its
    /// address before building `state`, such as an issuer naming the port.
    pub fn from_listener(state: AppState, listener: TcpListener) -> Self {
        let router = crate::http::router(state.clone());
        Self {
            listener,
            router,
            state,
            tls: None,
        }
    }

    /// Serves HTTPS only, with `config`, on the same listener.
    pub fn with_tls(self, config: Arc<ServerConfig>) -> Self {
        Self {
            tls: Some(config),
            ..self
        }
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
        let service = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        let served = match self.tls {
            None => {
                axum::serve(self.listener, service)
                    .with_graceful_shutdown(shutdown)
                    .await
            }
            Some(config) => match TlsListener::new(self.listener, config) {
                // axum implements `Connected` for the address of a listener
                // other than its own only inside `TapIo`, so this empty tap
                // gives handlers `ConnectInfo<SocketAddr>` as on plain TCP.
                Ok(listener) => {
                    axum::serve(listener.tap_io(|_| {}), service)
                        .with_graceful_shutdown(shutdown)
                        .await
                }
                Err(error) => Err(error),
            },
        };
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
