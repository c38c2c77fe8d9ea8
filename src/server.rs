//! The HTTP server: shared state, binding, and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

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
}

/// A server bound to its listener, and to a metrics listener when one is
/// configured, and ready to run.
pub struct Server {
    listener: TcpListener,
    router: Router,
    metrics: Option<(TcpListener, Router)>,
    state: AppState,
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
            metrics: None,
            state,
        }
    }

    /// Binds a second listener on `addr` that serves `GET /metrics` only,
    /// and installs the process's metrics recorder.
    pub async fn bind_metrics(mut self, addr: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let handle = crate::telemetry::metrics::install();
        let router = crate::http::metrics::router(self.state.clone(), handle);
        self.metrics = Some((listener, router));
        Ok(self)
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Returns the address of the metrics listener, if one is bound.
    pub fn metrics_addr(&self) -> Option<std::io::Result<SocketAddr>> {
        self.metrics
            .as_ref()
            .map(|(listener, _)| listener.local_addr())
    }

    /// Serves until `shutdown` completes, then stops accepting on both
    /// listeners, lets in-flight requests finish, and closes the store's
    /// pool.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Self {
            listener,
            router,
            metrics,
            state,
        } = self;
        let (stop, stopped) = watch::channel(false);
        let signal = tokio::spawn(async move {
            shutdown.await;
            stop.send_replace(true);
        });

        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        let main_stopped = stopped_by(stopped.clone());
        let main = async move {
            let served = axum::serve(listener, service)
                .with_graceful_shutdown(main_stopped)
                .await;
            // Dropping the sender stops the metrics listener too, should the
            // main one ever stop on its own.
            signal.abort();
            served
        };
        let metrics = async move {
            match metrics {
                Some((listener, router)) => {
                    axum::serve(listener, router)
                        .with_graceful_shutdown(stopped_by(stopped))
                        .await
                }
                None => Ok(()),
            }
        };
        let (served, metrics_served) = tokio::join!(main, metrics);
        state.store.close().await;
        served.and(metrics_served)
    }
}

/// Completes once `stopped` is `true`, or when its sender is dropped.
async fn stopped_by(mut stopped: watch::Receiver<bool>) {
    // An error means the sender was dropped, which also ends serving.
    let _ = stopped.wait_for(|stop| *stop).await;
}

/// Returns a future that completes on SIGINT or SIGTERM. On Unix this call
/// installs the handlers, rather than the future's first poll, so a signal
/// that arrives before the runtime polls the future still shuts the server
/// down gracefully instead of killing the process.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let (interrupt, terminate) = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            received(signal(SignalKind::interrupt()), "SIGINT"),
            received(signal(SignalKind::terminate()), "SIGTERM"),
        )
    };
    #[cfg(not(unix))]
    let (interrupt, terminate) = (
        async {
            if let Err(error) = tokio::signal::ctrl_c().await {
                tracing::error!(%error, "cannot listen for SIGINT");
                std::future::pending::<()>().await;
            }
        },
        std::future::pending::<()>(),
    );

    async move {
        tokio::select! {
            () = interrupt => tracing::info!("received SIGINT, shutting down"),
            () = terminate => tracing::info!("received SIGTERM, shutting down"),
        }
    }
}

/// Completes when the installed `handler` receives its signal, or never
/// when it could not be installed.
#[cfg(unix)]
async fn received(handler: std::io::Result<tokio::signal::unix::Signal>, name: &'static str) {
    match handler {
        Ok(mut handler) => {
            handler.recv().await;
        }
        Err(error) => {
            tracing::error!(%error, signal = name, "cannot listen for the signal");
            std::future::pending::<()>().await;
        }
    }
}
