//! The HTTP server: shared state, binding, the accept loop, and graceful
//! shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tower::ServiceExt;

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
        let builder = crate::http::limits::http1_builder(&self.state.config.http);
        serve(self.listener, self.router, builder, shutdown).await;
        sweeper.abort();
        self.state.store.close().await;
        Ok(())
    }
}

/// Accepts connections until `shutdown` completes, then waits for every
/// open connection to finish the request it is handling.
async fn serve(
    listener: TcpListener,
    router: Router,
    builder: http1::Builder,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_failed(error).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let router = router.clone();
        let service = service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request.map(Body::new))
        });
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // Header timeouts and clients that hang up land here: routine.
            if let Err(error) = connection.await {
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Handles a failed `accept`. A connection reset before it was accepted
/// concerns that connection only. Any other error, such as running out of
/// file descriptors, is logged, and accepting resumes after a second.
async fn accept_failed(error: std::io::Error) {
    use std::io::ErrorKind;
    let per_connection = matches!(
        error.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    );
    if !per_connection {
        tracing::error!(%error, "cannot accept a connection; retrying in 1s");
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
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
