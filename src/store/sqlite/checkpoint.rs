//! WAL checkpoints, mostly off the request path.
//!
//! SQLite's automatic checkpoint runs inside the commit that fills the WAL
//! past a threshold (1,000 pages by default): that commit copies the WAL
//! into the database file and syncs it before it returns. The access-token
//! writer of [`crate::store::group_commit`] commits for every request in
//! flight, so each such checkpoint held them all up. In `bench/run`, about
//! 5% of the requests at concurrency 16 took 10 to 15 ms instead of 2 to 3.
//!
//! Two changes take most of that work away from the writer:
//! - its connection checkpoints automatically only past
//!   [`TOKEN_WRITER_AUTOCHECKPOINT_PAGES`], about once a second at full
//!   load. It still has to: the WAL starts over from its beginning only
//!   when a checkpoint has copied all of it before the next write, and
//!   the writer is the one connection that can see to that;
//! - this task runs a passive checkpoint every [`INTERVAL`], which copies
//!   the pages committed so far without blocking writers or readers, so
//!   the writer's own checkpoint finds little left to copy.
//!
//! Measured on 2 cores with `oha` against a release build, client
//! credentials at concurrency 64: p99 23 ms with both, 68 ms with the large
//! threshold alone, 24 ms with SQLite's default (which costs 14% more CPU
//! per token). The other connections keep SQLite's default.

use std::time::Duration;

use sqlx::SqlitePool;
use tokio::task::AbortHandle;

/// Time between two checkpoints.
const INTERVAL: Duration = Duration::from_millis(200);

/// WAL pages (4 KiB each) past which the token writer's own commit
/// checkpoints: 64 MiB.
pub(super) const TOKEN_WRITER_AUTOCHECKPOINT_PAGES: &str = "16384";

/// The running checkpoint task of one store; stopped when dropped.
pub(super) struct Checkpointer {
    task: AbortHandle,
}

impl Checkpointer {
    /// Starts checkpointing `pool`'s database on the current runtime.
    pub(super) fn spawn(pool: SqlitePool) -> Self {
        let task = tokio::spawn(run(pool)).abort_handle();
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

async fn run(pool: SqlitePool) {
    let mut ticks = tokio::time::interval(INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Logs the first failure of a streak and the recovery, not every tick
    // of an outage.
    let mut failing = false;
    loop {
        ticks.tick().await;
        match sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            Ok(_) if failing => {
                failing = false;
                tracing::info!("WAL checkpoints work again");
            }
            Ok(_) => {}
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

#[cfg(test)]
mod tests {
    use chrono::{Duration as TimeDelta, Utc};

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
}
