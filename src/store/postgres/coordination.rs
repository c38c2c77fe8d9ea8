//! Change counters and leases.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::PostgresStore;
use crate::store::{CoordinationStore, StoreError};

#[async_trait]
impl CoordinationStore for PostgresStore {
    async fn generation(&self, topic: &str) -> Result<i64, StoreError> {
        let value: Option<i64> =
            sqlx::query_scalar("SELECT value FROM generations WHERE topic = $1")
                .bind(topic)
                .fetch_optional(&self.pool)
                .await?;
        Ok(value.unwrap_or(0))
    }

    async fn bump_generation(&self, topic: &str) -> Result<i64, StoreError> {
        let value = sqlx::query_scalar(
            "INSERT INTO generations (topic, value) VALUES ($1, 1)
             ON CONFLICT (topic) DO UPDATE SET value = generations.value + 1
             RETURNING value",
        )
        .bind(topic)
        .fetch_one(&self.pool)
        .await?;
        Ok(value)
    }

    async fn try_acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        // The conflicting row is locked by ON CONFLICT, so of two racing
        // callers the second finds the first one's lease and updates nothing.
        let taken: Option<String> = sqlx::query_scalar(
            "INSERT INTO leases (name, holder, until) VALUES ($1, $2, $4)
             ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, until = EXCLUDED.until
             WHERE leases.until < $3 OR leases.holder = $2
             RETURNING name",
        )
        .bind(name)
        .bind(holder)
        .bind(now)
        .bind(until)
        .fetch_optional(&self.pool)
        .await?;
        Ok(taken.is_some())
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
