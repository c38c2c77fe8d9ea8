//! Coordination between instances: change counters that caches poll, and
//! leases that let exactly one instance run a scheduled task.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;

#[async_trait]
pub trait CoordinationStore {
    /// Returns the change counter of `topic` (0 when never bumped). Caches
    /// poll it to notice changes made by the CLI or another instance.
    async fn generation(&self, topic: &str) -> Result<i64, StoreError>;

    /// Increments the change counter of `topic` and returns the new value.
    async fn bump_generation(&self, topic: &str) -> Result<i64, StoreError>;

    /// Takes the lease `name` for `holder` until `until`, if it is free or
    /// expired at `now` or already held by `holder`. Exactly one of several
    /// concurrent callers gets `true`.
    async fn try_acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Gives the lease up early, if `holder` still holds it.
    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError>;
}
