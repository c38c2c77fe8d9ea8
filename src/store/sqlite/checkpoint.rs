//! WAL checkpoints, off the request path.
//!
//! SQLite's automatic checkpoint runs inside the commit that fills the WAL
//! past a threshold (1,000 pages by default): that commit copies the WAL
//! into the database file and syncs both files before it returns. The
//! access-token writer of [`crate::store::group_commit`] commits for every
//! request in flight, so each such checkpoint held them all up. In
//! `bench/run`, about 5% of the requests at concurrency 16 took 10 to 15 ms
//! instead of 2 to 3.
//!
//! This task does the checkpoints instead. Every [`INTERVAL`] it runs a
//! passive checkpoint on a connection of the shared pool, which copies the
//! pages committed so far without blocking writers or readers, and syncs
//! them. That alone never empties the WAL under load: the WAL starts over
//! from its beginning only when a checkpoint has copied all of it before
//! the next write, and the token writer keeps appending while the copy
//! runs. So once the WAL contains [`WRITER_CHECKPOINT_FRAMES`], the task runs
//! a second passive checkpoint on the token writer's own connection, which
//! no batch can use meanwhile. It finds only the pages committed during the
//! first copy, so the writer waits a few milliseconds, and its next write
//! starts the WAL over.
//!
//! The writer's connection keeps an automatic checkpoint, at
//! [`TOKEN_WRITER_AUTOCHECKPOINT_PAGES`], only as a bound on the WAL should
//! this task fall behind. When the writer checkpointed at 64 MiB itself,
//! each such commit took about 20 ms (two fsyncs), about once a second at
//! full load. Client credentials at concurrency 64 on 2 cores, with `oha`
//! against a release build, gave p99 12.1 ms and p99.9 30 ms that way. With
//! this task they were 11.0 and 20-35 ms. With no checkpoint by the writer
//! at all, so a WAL that only grows, they were 10.5 and 13.2 ms. The other
//! connections keep SQLite's default.

use std::time::Duration;

use sqlx::SqlitePool;
use tokio::task::AbortHandle;

/// Time between two checkpoints.
const INTERVAL: Duration = Duration::from_millis(200);

/// WAL frames (4 KiB pages) past which the task also checkpoints on the
/// token writer's connection, so that the WAL starts over: 128 MiB. Each
/// time, the writer waits for one fsync of the database file, about 10 ms
/// on the bench machine. At full load this happens every 2 to 3 seconds,
/// so fewer than 1% of the requests wait for it. With 32 MiB, p99 at
/// concurrency 64 rose from 11 to 13-17 ms.
const WRITER_CHECKPOINT_FRAMES: i64 = 32768;

/// WAL pages past which the token writer's own commit checkpoints, which
/// only happens when this task falls behind: 256 MiB.
pub(super) const TOKEN_WRITER_AUTOCHECKPOINT_PAGES: &str = "65536";

/// The running checkpoint task of one store; stopped when dropped.
pub(super) struct Checkpointer {
    task: AbortHandle,
}

impl Checkpointer {
    /// Starts checkpointing `pool`'s database on the current runtime, with
    /// `writer` as the token writer's pool when it has one of its own.
    pub(super) fn spawn(pool: SqlitePool, writer: Option<SqlitePool>) -> Self {
        let task = tokio::spawn(run(pool, writer, WRITER_CHECKPOINT_FRAMES)).abort_handle();
        Self { task }
    }

    pub(super) fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Checkpoints `pool`'s database every [`INTERVAL`], and through `writer`,
/// the token writer's pool, whenever the WAL contains `writer_frames` or more.
async fn run(pool: SqlitePool, writer: Option<SqlitePool>, writer_frames: i64) {
    let mut ticks = tokio::time::interval(INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Logs the first failure of a streak and the recovery, not every tick
    // of an outage.
    let mut failing = false;
    loop {
        ticks.tick().await;
        match checkpoint_once(&pool, writer.as_ref(), writer_frames).await {
            Ok(()) if failing => {
                failing = false;
                tracing::info!("WAL checkpoints work again");
            }
            Ok(()) => {}
            // The store is closing; its last connection checkpoints.
            Err(_) if pool.is_closed() => return,
            Err(error) if !failing => {
                failing = true;
                tracing::warn!(%error, "WAL checkpoint failed; the -wal file grows until one succeeds");
            }
            Err(_) => {}
        }
    }
}

/// Runs a passive checkpoint through `pool`, then one through `writer` when
/// the WAL contained `writer_frames` or more.
async fn checkpoint_once(
    pool: &SqlitePool,
    writer: Option<&SqlitePool>,
    writer_frames: i64,
) -> Result<(), sqlx::Error> {
    let frames = passive_checkpoint(pool).await?;
    if let Some(writer) = writer.filter(|_| frames >= writer_frames) {
        passive_checkpoint(writer).await?;
    }
    Ok(())
}

/// Runs a passive checkpoint on a connection of `pool` and returns the
/// frames the WAL contained (-1 outside WAL mode).
async fn passive_checkpoint(pool: &SqlitePool) -> Result<i64, sqlx::Error> {
    // The row is (busy, frames in the WAL, frames copied).
    let (_, frames, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(pool)
        .await?;
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use chrono::{Duration as TimeDelta, Utc};
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

    use crate::store::{AccessTokenRecord, AccessTokenStore, SqliteStore, Store};

    fn record(n: usize) -> AccessTokenRecord {
        let now = Utc::now();
        AccessTokenRecord {
            jti: format!("jti-{n}"),
            digest: format!("digest-{n}"),
            client_id: "client".to_owned(),
            subject: "subject".to_owned(),
            grant_id: None,
            grant_type: "client_credentials".to_owned(),
            audience: "https://api.example.com/".to_owned(),
            scope: "read".to_owned(),
            issued_at: now,
            expires_at: now + TimeDelta::minutes(5),
            revoked_at: None,
        }
    }

    /// Checks that the task copies committed pages into the database file
    /// within a few intervals, below the writer's own checkpoint threshold.
    #[tokio::test]
    async fn task_moves_committed_pages_into_the_file() {
        let folder = tempfile::tempdir().unwrap();
        let file = folder.path().join("tessera.db");
        let store = SqliteStore::connect(&format!("sqlite://{}", file.display()))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        // Wait for the checkpoint of the migrations, then measure.
        tokio::time::sleep(2 * super::INTERVAL).await;
        let before = std::fs::metadata(&file).unwrap().len();

        let records: Vec<AccessTokenRecord> = (0..2_000).map(record).collect();
        for chunk in records.chunks(200) {
            store.insert_access_tokens(chunk).await.unwrap();
        }
        let deadline = tokio::time::Instant::now() + 5 * super::INTERVAL;
        while std::fs::metadata(&file).unwrap().len() == before {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no checkpoint reached the database file"
            );
            tokio::time::sleep(super::INTERVAL / 10).await;
        }
    }

    /// Checks that the task starts the WAL over while one writer commits
    /// without pause and never checkpoints itself, so the -wal file stays
    /// far smaller than what was written through it.
    #[tokio::test]
    async fn task_starts_the_wal_over_under_constant_writes() {
        let folder = tempfile::tempdir().unwrap();
        let file = folder.path().join("wal.db");
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", file.display()))
            .unwrap()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal);
        let pool = SqlitePoolOptions::new()
            .connect_with(options.clone())
            .await
            .unwrap();
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.pragma("wal_autocheckpoint", "0"))
            .await
            .unwrap();
        sqlx::query("CREATE TABLE rows (value BLOB NOT NULL)")
            .execute(&writer)
            .await
            .unwrap();
        let task = tokio::spawn(super::run(pool, Some(writer.clone()), 64));

        // Each commit appends at least one 4 KiB frame.
        let mut commits = 0u64;
        let deadline = tokio::time::Instant::now() + 8 * super::INTERVAL;
        while tokio::time::Instant::now() < deadline {
            sqlx::query("INSERT INTO rows (value) VALUES (randomblob(100))")
                .execute(&writer)
                .await
                .unwrap();
            commits += 1;
        }
        task.abort();
        let written = commits * 4096;
        let wal = std::fs::metadata(folder.path().join("wal.db-wal"))
            .unwrap()
            .len();
        assert!(
            wal < written / 2,
            "the WAL file is {wal} bytes after {commits} commits"
        );
    }
}
