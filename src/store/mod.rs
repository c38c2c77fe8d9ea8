//! Persistence: the [`Store`] trait and its PostgreSQL and SQLite backends.
//!
//! Each backend keeps its own SQL in its own module; shared code only sees
//! the trait and the row types. Timestamps cross the trait as
//! `DateTime<Utc>` and are passed in by the caller, never read from the clock
//! here, so tests control time.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub mod access_tokens;
mod assertion_jtis;
mod audit;
mod availability;
mod clients;
mod consents;
mod coordination;
mod data_keys;
pub mod grants;
pub mod group_commit;
mod keys;
mod login_transactions;
mod postgres;
mod resources;
mod sessions;
mod sqlite;
mod users;

pub use access_tokens::{AccessTokenKey, AccessTokenRecord, AccessTokenStore};
pub use assertion_jtis::AssertionJtiStore;
pub use audit::{AuditEvent, AuditStore};
pub use availability::{caused_by_unavailable_store, is_unavailable};
pub use clients::{
    ApplicationType, AuthMethod, Client, ClientStore, InitialAccessToken, CLIENTS_TOPIC,
};
pub use consents::{ConsentRecord, ConsentStore};
pub use coordination::CoordinationStore;
pub use data_keys::{DataKeyStore, WrappedDataKey};
pub use grants::{
    AuthorizationCodeRecord, AuthorizationFilter, CodeConsumption, GrantRecord, GrantStore,
    PendingAuthorization, RefreshRotation, RefreshTokenRecord,
};
pub use keys::{KeyChanges, KeyStore, KeyTimes, StoredKey};
pub use login_transactions::{LoginOutcome, LoginTransactionRecord, LoginTransactionStore};
pub use resources::{EncryptionKeySource, ResourceServer, ResourceStore, RESOURCES_TOPIC};
pub use sessions::{SessionRecord, SessionStore};
pub use users::{FailureCount, FailurePolicy, UserRecord, UserStore};

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// How long a request waits for a pooled SQLite connection, and how long
/// the first PostgreSQL connection at start-up may take, before the store
/// counts as unreachable. The PostgreSQL pool waits less (see its module).
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// Errors from the store. Variants that the caller acts on are typed; the
/// rest carry the driver error for logging, never for clients.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {url} is unreachable")]
    Unreachable { url: String, source: sqlx::Error },
    /// The SQLite file or its folder cannot be created, opened or written.
    #[error(
        "cannot {action} {}: {source}; the user tessera runs as needs read and write \
         access to the database file and its folder (SQLite creates the -wal and -shm \
         files beside it), on a file system mounted read-write with free space",
        path.display()
    )]
    SqliteFile {
        action: &'static str,
        path: std::path::PathBuf,
        source: sqlx::Error,
    },
    #[error(
        "the database schema is at migration {found}, newer than this binary knows \
         (latest {known}); run a newer tessera release against this database"
    )]
    SchemaTooNew { found: i64, known: i64 },
    #[error("the database is not migrated (missing migration {missing}); run `tessera migrate`")]
    SchemaBehind { missing: i64 },
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },
    #[error("{what} {id} already exists")]
    AlreadyExists { what: &'static str, id: String },
    #[error("stored {what} is malformed: {message}")]
    Malformed { what: &'static str, message: String },
    #[error(transparent)]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// The database cannot serve requests for now: stopped, unreachable,
    /// out of connections or disk space, or read-only. Converting a
    /// [`sqlx::Error`] picks this variant or `Database`.
    #[error("the database is unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error(transparent)]
    Database(sqlx::Error),
}

/// The database engine behind a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    /// Returns the backend a `database_url` names: PostgreSQL for
    /// `postgres://` and `postgresql://`, SQLite for anything else.
    pub fn of_url(url: &str) -> Self {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        }
    }
}

/// The persistence interface every part of Tessera uses. Each concept has
/// its own trait in its own module, implemented by each backend in a file
/// of the same name; `Store` gathers them.
#[async_trait]
pub trait Store:
    AccessTokenStore
    + AssertionJtiStore
    + ClientStore
    + CoordinationStore
    + DataKeyStore
    + KeyStore
    + ResourceStore
    + UserStore
    + SessionStore
    + LoginTransactionStore
    + ConsentStore
    + AuditStore
    + GrantStore
    + Send
    + Sync
    + 'static
{
    fn backend(&self) -> Backend;

    /// Applies pending migrations. Safe to run from several processes at once.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// Fails unless every embedded migration is applied and none is unknown.
    async fn check_schema(&self) -> Result<(), StoreError>;

    /// Runs a trivial query, for readiness checks.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Closes the pool, waiting for checked-out connections to return.
    async fn close(&self);

    /// Returns how many pooled connections are in use and idle right now.
    fn pool_usage(&self) -> PoolUsage;
}

/// A snapshot of the connection pool, for metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolUsage {
    /// Connections checked out by a query or transaction.
    pub in_use: u32,
    /// Open connections waiting in the pool.
    pub idle: u32,
    /// Maximum number of connections the pool opens.
    pub max: u32,
}

impl PoolUsage {
    /// Reads the usage of a sqlx pool. `num_idle()` and `size()` are two
    /// reads, not one snapshot, so while connections come and go the split
    /// may be off by the few that moved in between.
    fn of<DB: sqlx::Database>(pool: &sqlx::Pool<DB>) -> Self {
        let idle = u32::try_from(pool.num_idle()).unwrap_or(u32::MAX);
        Self {
            in_use: pool.size().saturating_sub(idle),
            idle,
            max: pool.options().get_max_connections(),
        }
    }
}

/// Opens the store named by `url` (`postgres://` or `sqlite://`).
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    match Backend::of_url(url) {
        Backend::Postgres => Ok(Arc::new(PostgresStore::connect(url).await?)),
        Backend::Sqlite => Ok(Arc::new(SqliteStore::connect(url).await?)),
    }
}

/// Maps a unique-constraint violation to `AlreadyExists`, anything else as
/// [`StoreError::from`] does.
fn insert_error(err: sqlx::Error, what: &'static str, id: &str) -> StoreError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::AlreadyExists {
            what,
            id: id.to_owned(),
        },
        _ => StoreError::from(err),
    }
}

/// Encodes a list as the JSON text stored in list-valued columns.
fn encode_list(values: &[String]) -> String {
    serde_json::Value::from(values.to_vec()).to_string()
}

/// Decodes a list-valued column.
fn decode_list(what: &'static str, text: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(|err| StoreError::Malformed {
        what,
        message: err.to_string(),
    })
}

/// Decodes a JSON-valued column.
fn decode_json(what: &'static str, text: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(text).map_err(|err| StoreError::Malformed {
        what,
        message: err.to_string(),
    })
}

/// Joins scope or `amr` values with spaces, the form they are stored in.
fn join_words(words: &[String]) -> String {
    words.join(" ")
}

/// Splits a stored space-separated list.
fn split_words(text: &str) -> Vec<String> {
    text.split(' ')
        .filter(|word| !word.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Removes the password from a database URL so it can be printed.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // set_password fails only for URLs that cannot carry one.
            let _ = parsed.set_password(Some("redacted"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// Compares the migrations applied in the database with the embedded ones.
fn compare_schema(migrator: &sqlx::migrate::Migrator, applied: &[i64]) -> Result<(), StoreError> {
    let known: Vec<i64> = migrator
        .iter()
        .filter(|migration| migration.migration_type.is_up_migration())
        .map(|migration| migration.version)
        .collect();
    let latest_known = known.iter().copied().max().unwrap_or(0);
    if let Some(found) = applied
        .iter()
        .copied()
        .find(|version| !known.contains(version))
    {
        return Err(StoreError::SchemaTooNew {
            found,
            known: latest_known,
        });
    }
    if let Some(missing) = known
        .iter()
        .copied()
        .find(|version| !applied.contains(version))
    {
        return Err(StoreError::SchemaBehind { missing });
    }
    Ok(())
}

/// Maps sqlx's "database has a migration this binary lacks" to a clear error.
fn migrate_error(
    migrator: &sqlx::migrate::Migrator,
    err: sqlx::migrate::MigrateError,
) -> StoreError {
    match err {
        sqlx::migrate::MigrateError::VersionMissing(found) => StoreError::SchemaTooNew {
            found,
            known: migrator.iter().map(|m| m.version).max().unwrap_or(0),
        },
        other => StoreError::Migration(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_url_hides_password() {
        let redacted = redact_url("postgres://tessera:s3cret@db.internal/tessera");
        assert!(!redacted.contains("s3cret"), "{redacted}");
        assert!(redacted.contains("db.internal"), "{redacted}");
    }

    #[test]
    fn redact_url_keeps_sqlite_path() {
        assert_eq!(redact_url("sqlite://./data/t.db"), "sqlite://./data/t.db");
    }
}
