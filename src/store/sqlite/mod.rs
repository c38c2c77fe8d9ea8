//! SQLite backend, the default for a single instance.
//!
//! WAL mode and a busy timeout let the CLI and the server share one file.
//! Times are stored as Unix milliseconds.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::{
    compare_schema, migrate_error, redact_url, Backend, PoolUsage, Store, StoreError,
    ACQUIRE_TIMEOUT,
};

mod access_tokens;
mod assertion_jtis;
mod audit;
mod checkpoint;
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

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a writer waits for another process's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

const MAX_CONNECTIONS: u32 = 8;

pub struct SqliteStore {
    pool: SqlitePool,
    /// One connection of its own for the access-token batches of
    /// [`crate::store::group_commit`]. SQLite drops a connection's page
    /// cache whenever another connection wrote since its last transaction.
    /// Batches spread over the shared pool would therefore read the token
    /// indexes back from the file each time. On this connection, which only
    /// the token batches and the pruning of token records use, the cache
    /// stays warm and the batches wait behind nothing else.
    /// `None` for `:memory:`, where each connection opens a database of its
    /// own, so the batches use the shared pool.
    token_writer: Option<SqlitePool>,
    checkpoints: checkpoint::Checkpointer,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and its folder.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let unreachable = |source| StoreError::Unreachable {
            url: redact_url(url),
            source,
        };
        let options = SqliteConnectOptions::from_str(url)
            .map_err(unreachable)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let path = options.get_filename().to_owned();
        let unusable = |action, path: &Path, source| StoreError::SqliteFile {
            action,
            path: path.to_owned(),
            source,
        };
        if let Some(folder) = path.parent() {
            create_folder(folder)
                .map_err(|err| unusable("create the data folder", folder, sqlx::Error::Io(err)))?;
        }
        if path != Path::new(":memory:") {
            create_private_file(&path)
                .map_err(|err| unusable("create the database file", &path, sqlx::Error::Io(err)))?;
        }
        // sqlx pings a pooled connection before each use by default, which
        // costs a SQLite connection a round trip to its worker thread for
        // nothing: unlike a network connection, it cannot have dropped.
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await
            .map_err(|err| unusable("open the database", &path, err))?;
        let token_writer = (path != Path::new(":memory:")).then(|| {
            SqlitePoolOptions::new()
                .max_connections(1)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .test_before_acquire(false)
                .connect_lazy_with(options.pragma(
                    "wal_autocheckpoint",
                    checkpoint::TOKEN_WRITER_AUTOCHECKPOINT_PAGES,
                ))
        });
        let checkpoints = checkpoint::Checkpointer::spawn(pool.clone(), token_writer.clone());
        Ok(Self {
            pool,
            token_writer,
            checkpoints,
        })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Returns the pool for access-token batches and their pruning.
    fn token_writer(&self) -> &SqlitePool {
        self.token_writer.as_ref().unwrap_or(&self.pool)
    }

    /// Returns the database file a `sqlite://` URL names.
    pub fn database_file(url: &str) -> Result<PathBuf, StoreError> {
        let options =
            SqliteConnectOptions::from_str(url).map_err(|source| StoreError::Unreachable {
                url: redact_url(url),
                source,
            })?;
        Ok(options.get_filename().to_owned())
    }

    /// Writes a consistent copy of the database to `out`, which must not
    /// exist or be empty, with `VACUUM INTO`. The copy reads one snapshot,
    /// and in WAL mode other connections keep reading and writing
    /// meanwhile. The copy has no free pages and no WAL file.
    pub async fn backup_into(&self, out: &Path) -> Result<(), StoreError> {
        let out = out.to_str().ok_or_else(|| StoreError::Malformed {
            what: "backup path",
            message: format!("{} is not valid UTF-8", out.display()),
        })?;
        sqlx::query("VACUUM INTO ?")
            .bind(out)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Starts a write transaction that takes SQLite's write lock at once
    /// (`BEGIN IMMEDIATE`). A deferred transaction that reads and then
    /// writes can fail with "database is locked" when another connection
    /// wrote in between; an immediate one waits for the busy timeout instead.
    pub(crate) async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }
}

/// Creates an empty database file readable by its owner only, unless it
/// exists. It contains password hashes and sealed keys, and SQLite gives the
/// WAL and shared-memory files the database file's permissions.
fn create_private_file(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(error),
    }
}

fn create_folder(folder: &Path) -> std::io::Result<()> {
    if folder.as_os_str().is_empty() || folder.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(folder)
}

/// Converts a timestamp to the stored Unix milliseconds.
pub(crate) fn to_millis(time: DateTime<Utc>) -> i64 {
    time.timestamp_millis()
}

/// Converts stored Unix milliseconds back to a timestamp.
pub(crate) fn from_millis(millis: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(millis).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|err| migrate_error(&MIGRATOR, err))
    }

    async fn check_schema(&self) -> Result<(), StoreError> {
        let table: Option<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
        )
        .fetch_optional(&self.pool)
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
        self.checkpoints.stop();
        if let Some(writer) = &self.token_writer {
            writer.close().await;
        }
        self.pool.close().await;
    }

    /// Counts the token writer's connection with the shared pool's.
    fn pool_usage(&self) -> PoolUsage {
        let shared = PoolUsage::of(&self.pool);
        let Some(writer) = &self.token_writer else {
            return shared;
        };
        let writer = PoolUsage::of(writer);
        PoolUsage {
            in_use: shared.in_use + writer.in_use,
            idle: shared.idle + writer.idle,
            max: shared.max + writer.max,
        }
    }
}
