//! `tessera serve`: open the store, migrate, and run the HTTP server.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;

use crate::config::Config;
use crate::server::{self, AppState, Server};
use crate::store::{self, Backend};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (overrides `listen`).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// Do not apply migrations at start-up (PostgreSQL only); the schema must
    /// already be current.
    #[arg(long)]
    pub no_migrate: bool,
}

pub async fn run(mut config: Config, args: ServeArgs) -> anyhow::Result<()> {
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
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

    let listen = config.listen;
    let state = AppState {
        config: Arc::new(config),
        store,
    };
    let server = Server::bind(state.clone(), listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let address = server.local_addr()?;
    tracing::info!(%address, issuer = %state.config.issuer, "tessera listening");

    server.run(server::shutdown_signal()).await?;
    tracing::info!("tessera stopped");
    Ok(())
}
