//! Background pruning of expired records: access-token records, client
//! assertion `jti`s, and audit events older than `audit.retention`. Every
//! instance runs it; the deletes are idempotent, so instances need no
//! coordination.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::clock::Clock;
use crate::store::{Store, StoreError};

/// How often expired records are pruned.
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(60);

/// Records deleted per statement, so no statement holds locks for long:
/// on SQLite, token inserts wait for the statement to finish.
pub const PRUNE_BATCH: u32 = 250;

/// Deletes every access-token record and assertion `jti` that expired
/// before now, and every audit event older than `audit_retention`; returns
/// the number of rows deleted.
pub async fn prune_expired(
    store: &dyn Store,
    clock: &dyn Clock,
    audit_retention: chrono::Duration,
) -> Result<u64, StoreError> {
    let now = clock.now();
    let mut deleted = 0;
    loop {
        let batch = store.prune_access_tokens(now, PRUNE_BATCH).await?;
        deleted += batch;
        // Lets the requests waiting for the store go first.
        tokio::task::yield_now().await;
        if batch < u64::from(PRUNE_BATCH) {
            break;
        }
    }
    deleted += store.prune_assertion_jtis(now).await?;
    loop {
        let batch = store
            .prune_audit_events(now - audit_retention, PRUNE_BATCH)
            .await?;
        deleted += batch;
        if batch < u64::from(PRUNE_BATCH) {
            break;
        }
    }
    Ok(deleted)
}

/// Runs [`prune_expired`] every [`PRUNE_INTERVAL`] until `stop` changes.
pub fn spawn_pruner(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    audit_retention: chrono::Duration,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(PRUNE_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stop.changed() => break,
            }
            match prune_expired(store.as_ref(), clock.as_ref(), audit_retention).await {
                Ok(0) => {}
                Ok(deleted) => tracing::debug!(deleted, "pruned expired records"),
                Err(error) => {
                    tracing::warn!(%error, "pruning expired records failed; retrying next interval")
                }
            }
        }
    })
}
