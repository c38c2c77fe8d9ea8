//! The HTTP server: shared state, binding, the accept loop, and graceful
//! shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::serve::Listener;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::rustls::ServerConfig;
use tower::ServiceExt;

use crate::clock::Clock;
use crate::config::Config;
use crate::crypto::DataKeys;
use crate::keys::KeyRing;
use crate::store::group_commit::AccessTokenWriter;
use crate::store::Store;
use crate::tls::TlsListener;

/// State shared by every request handler: one pointer to [`SharedState`],
/// so the several clones each request makes (one per extractor and
/// middleware that takes the state) cost one reference count each instead
/// of one per field.
#[derive(Clone)]
pub struct AppState(Arc<SharedState>);

impl From<SharedState> for AppState {
    fn from(shared: SharedState) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = SharedState;

    fn deref(&self) -> &SharedState {
        &self.0
    }
}

/// The services behind [`AppState`].
pub struct SharedState {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    /// Records issued access tokens, grouping concurrent requests into one
    /// commit.
    pub access_tokens: AccessTokenWriter,
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

/// A server bound to its listener, and to a metrics listener when one is
/// configured, and ready to run.
pub struct Server {
    listener: TcpListener,
    router: Router,
    metrics: Option<(TcpListener, Router)>,
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
            metrics: None,
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
            tls,
        } = self;
        let (stop, stopped) = watch::channel(false);
        let signal = tokio::spawn(async move {
            shutdown.await;
            stop.send_replace(true);
        });
        let sweeper = tokio::spawn(Arc::clone(&state.rate_limits).sweep_forever());
        let builder = crate::http::limits::http1_builder(&state.config.http);

        let main = {
            let builder = builder.clone();
            let stopped = stopped_by(stopped.clone());
            async move {
                let served = match tls {
                    None => {
                        serve(listener, router, builder, stopped).await;
                        Ok(())
                    }
                    Some(config) => match TlsListener::new(listener, config) {
                        Ok(listener) => {
                            serve(listener, router, builder, stopped).await;
                            Ok(())
                        }
                        Err(error) => Err(error),
                    },
                };
                // Dropping the sender stops the metrics listener too, should
                // the main one ever stop on its own.
                signal.abort();
                served
            }
        };
        let metrics = async move {
            if let Some((listener, router)) = metrics {
                serve(listener, router, builder, stopped_by(stopped)).await;
            }
        };
        let (served, ()) = tokio::join!(main, metrics);
        sweeper.abort();
        // Closing waits for every connection, and one may still run a
        // statement that another process's lock holds up. SQLite and
        // PostgreSQL roll back what a connection cut off had not committed.
        if tokio::time::timeout(STOP_WAIT, state.store.close())
            .await
            .is_err()
        {
            tracing::warn!(
                wait = ?STOP_WAIT,
                "closing the store timed out, so its running statements were abandoned"
            );
        }
        served
    }
}

/// Accepts connections until `shutdown` completes, then waits for every
/// open connection to finish the request it is handling. The listener
/// handles failed accepts: axum's TCP listener skips errors about one
/// connection and retries others after a second, and the TLS listener does
/// the same before its handshakes.
async fn serve<L>(
    mut listener: L,
    router: Router,
    builder: http1::Builder,
    shutdown: impl Future<Output = ()>,
) where
    L: Listener<Addr = SocketAddr>,
{
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
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

/// Completes once `stopped` is `true`, or when its sender is dropped.
async fn stopped_by(mut stopped: watch::Receiver<bool>) {
    // An error means the sender was dropped, which also ends serving.
    let _ = stopped.wait_for(|stop| *stop).await;
}

/// Time a stopping process waits for each piece of work that another
/// process's lock or a long computation may hold up.
pub const STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

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
