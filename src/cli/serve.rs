//! `tessera serve`: open the store, migrate, and run the HTTP server.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio_rustls::rustls::ServerConfig;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::crypto::{DataKeys, MasterKey, MasterKeySource};
use crate::http::rate_limit::RateLimits;
use crate::keys::{KeyManager, KeySettings};
use crate::maintenance;
use crate::server::{self, AppState, Server, SharedState, STOP_WAIT};
use crate::store::group_commit::AccessTokenWriter;
use crate::store::{self, Backend};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (overrides `listen`).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// Address of the Prometheus metrics listener, which serves `GET
    /// /metrics` (overrides `metrics_listen`).
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,

    /// Do not apply migrations at start-up (PostgreSQL only); the schema must
    /// already be current.
    #[arg(long)]
    pub no_migrate: bool,
}

/// Runs the server until SIGINT or SIGTERM. `tls`, when set, comes from
/// [`crate::tls::load`], which the caller runs first so that its errors
/// exit as configuration errors.
pub async fn run(
    mut config: Config,
    args: ServeArgs,
    tls: Option<Arc<ServerConfig>>,
) -> anyhow::Result<()> {
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(metrics_listen) = args.metrics_listen {
        config.metrics_listen = Some(metrics_listen);
    }
    if config.metrics_listen.is_some() {
        // Installed before anything records, so that start-up is counted.
        crate::telemetry::metrics::install();
    }
    if tls.is_some() && config.issuer.starts_with("http://") {
        warn_plain_issuer(&config.issuer);
    }
    // From here on SIGINT and SIGTERM stop the process gracefully: start-up
    // stops where it is, and the running server drains.
    let mut stop = Box::pin(server::shutdown_signal());
    // The master key comes first, so that a missing one stops start-up
    // before anything touches the database.
    let master_key = load_master_key(&config)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    // A migration may wait for another process's lock for as long as that
    // process holds it, so a signal must be able to end the wait.
    let (store, data_keys) = tokio::select! {
        biased;
        () = &mut stop => {
            tracing::info!("stopped during start-up");
            return Ok(());
        }
        opened = open_store(&config, &args, &master_key, clock.as_ref()) => opened?,
    };

    let key_manager = Arc::new(KeyManager::new(
        Arc::clone(&store),
        data_keys.sealer.clone(),
        Arc::clone(&clock),
        KeySettings::from_config(&config),
    ));
    tokio::select! {
        // A signal received during the steps above wins over a bootstrap
        // that would otherwise start generating keys.
        biased;
        () = &mut stop => {
            // Generating the first keys holds the key-rotation lease, which
            // would otherwise block the next start until it expires. A
            // database locked by another process must not hold up the stop.
            let released = key_manager.release_held_lease();
            if tokio::time::timeout(STOP_WAIT, released).await.is_err() {
                tracing::warn!(
                    wait = ?STOP_WAIT,
                    "releasing the key-rotation lease timed out, so it expires on its own"
                );
            }
            tracing::info!("stopped during start-up");
            return Ok(());
        }
        booted = key_manager.bootstrap() => {
            booted.context("cannot load the signing and encryption keys")?;
        }
    }
    tracing::info!("key ring loaded");
    let keys = key_manager.ring();
    let scheduler = key_manager.spawn();

    let accounts = crate::accounts::Accounts::new(&config)
        .await
        .context("cannot set up password hashing")?;
    let listen = config.listen;
    let registry =
        crate::registry::Registry::new(Arc::clone(&store), Arc::clone(&clock), &config.cache);
    let rate_limits = Arc::new(RateLimits::new(&config.rate_limits));
    let state = AppState::from(SharedState {
        accounts: Arc::new(accounts),
        rate_limits,
        config: Arc::new(config),
        access_tokens: AccessTokenWriter::spawn(Arc::clone(&store)),
        store,
        clock,
        data_keys,
        registry,
        keys,
    });
    let mut server = Server::bind(state.clone(), listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    if let Some(metrics_listen) = state.config.metrics_listen {
        server = server
            .bind_metrics(metrics_listen)
            .await
            .with_context(|| format!("cannot listen on {metrics_listen} (metrics_listen)"))?;
    }
    let scheme = match tls {
        Some(tls) => {
            server = server.with_tls(tls);
            "https"
        }
        None => "http",
    };
    let address = server.local_addr()?;
    tracing::info!(%address, scheme, issuer = %state.config.issuer, "tessera listening");
    if let Some(address) = server.metrics_addr().transpose()? {
        tracing::info!(%address, "metrics listening");
    }

    let sweeper = tokio::spawn(crate::accounts::sweeper::run(state.clone()));
    let (stop_tasks, stopped) = tokio::sync::watch::channel(false);
    let pruner = maintenance::spawn_pruner(
        state.store.clone(),
        state.clock.clone(),
        state.config.audit.retention.as_chrono(),
        stopped,
    );

    // The background tasks stop before the server closes the store, so
    // that none of them fails on a closed pool.
    let shutdown = async move {
        stop.await;
        scheduler.abort();
        sweeper.abort();
        stop_tasks.send(true).ok();
        // A pass that waits for another process's lock is abandoned, and
        // the next start prunes what it left.
        let mut pruner = pruner;
        if tokio::time::timeout(STOP_WAIT, &mut pruner).await.is_err() {
            pruner.abort();
        }
    };
    server.run(shutdown).await?;
    tracing::info!("tessera stopped");
    Ok(())
}

/// Opens the store, migrates it (or checks its schema under
/// `--no-migrate` on PostgreSQL) and loads or creates its data keys.
async fn open_store(
    config: &Config,
    args: &ServeArgs,
    master_key: &MasterKey,
    clock: &dyn Clock,
) -> anyhow::Result<(Arc<dyn store::Store>, DataKeys)> {
    let url = config.database_url();
    let store = store::open(&url).await?;
    tracing::info!(backend = store.backend().as_str(), url = %store::redact_url(&url), "store opened");

    if args.no_migrate && store.backend() == Backend::Postgres {
        store.check_schema().await?;
    } else {
        store
            .migrate()
            .await
            .context("cannot migrate the database")?;
        tracing::info!("migrations applied");
    }

    let data_keys = DataKeys::load_or_create(store.as_ref(), master_key, clock.now())
        .await
        .with_context(|| format!("cannot load the data keys from {}", store::redact_url(&url)))?;
    Ok((store, data_keys))
}

/// Warns that TLS is on while the issuer is an http URL. Such an issuer is
/// always a loopback one (validation allows http nowhere else), so this is
/// a development setup and nothing travels unencrypted; but discovery and
/// every redirect name http URLs that this server does not serve.
fn warn_plain_issuer(issuer: &str) {
    tracing::warn!(
        %issuer,
        "TLS is on but the issuer is an http URL, so clients that follow discovery \
         will fail; set `issuer` to the https URL clients use"
    );
}

/// Loads the master key. Only the SQLite default may create one, because
/// PostgreSQL instances must share one.
fn load_master_key(config: &Config) -> anyhow::Result<MasterKey> {
    let create_if_missing = config.database_url.is_none();
    let master_key = MasterKey::load(config, create_if_missing)?;
    if let MasterKeySource::Created(path) = master_key.source() {
        tracing::warn!(
            path = %path.display(),
            "created a development master key; in production set TESSERA_MASTER_KEY or \
             master_key_file and keep the key out of the data directory"
        );
    }
    Ok(master_key)
}
