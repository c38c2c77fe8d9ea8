//! PostgreSQL backend.

use async_trait::async_trait;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::Connection;

use super::{
    compare_schema, migrate_error, redact_url, Backend, PoolUsage, Store, StoreError,
    ACQUIRE_TIMEOUT,
};

mod access_tokens;
mod assertion_jtis;
mod audit;
mod clients;
mod consents;
mod coordination;
mod data_keys;
mod grants;
mod keys;
mod login_transactions;
mod resources;
mod sessions;
mod users;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections per instance; PostgreSQL's default `max_connections` (100)
/// leaves room for several instances and the CLI.
const MAX_CONNECTIONS: u32 = 16;

/// How long a request waits for a pooled connection, including a new one
/// the pool opens, before it fails with 503. The pool retries a refused
/// connection until then, so while the database is down every request
/// takes this long to fail; one second makes an outage visible to clients
/// and load balancers quickly and still rides over a shorter blip.
const POOL_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(1);

pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects and checks that the server responds.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let unreachable = |source| StoreError::Unreachable {
            url: redact_url(url),
            source,
        };
        let options = PgConnectOptions::from_str(url).map_err(unreachable)?;
        // One direct connection first: a pool would report only a timeout,
        // where this reports the cause (refused, unknown database, auth).
        let probe = tokio::time::timeout(ACQUIRE_TIMEOUT, PgConnection::connect_with(&options))
            .await
            .map_err(|_| unreachable(sqlx::Error::PoolTimedOut))?
            .map_err(unreachable)?;
        probe.close().await.map_err(unreachable)?;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(POOL_ACQUIRE_TIMEOUT)
            .connect_lazy_with(options);
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        // sqlx holds a PostgreSQL advisory lock while migrating, so instances
        // starting together apply each migration once.
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|err| migrate_error(&MIGRATOR, err))
    }

    async fn check_schema(&self) -> Result<(), StoreError> {
        let table: Option<String> =
            sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations')::text")
                .fetch_one(&self.pool)
                .await?;
        let applied: Vec<i64> = match table {
            Some(_) => {
                sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                    .fetch_all(&self.pool)
                    .await?
            }
            None => Vec::new(),
        };
        compare_schema(&MIGRATOR, &applied)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    fn pool_usage(&self) -> PoolUsage {
        PoolUsage::of(&self.pool)
    }
}
