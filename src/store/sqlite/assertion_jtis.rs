//! Client assertion `jti`s.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{to_millis, SqliteStore};
use crate::store::assertion_jtis::AssertionJtiStore;
use crate::store::StoreError;

#[async_trait]
impl AssertionJtiStore for SqliteStore {
    async fn consume_assertion_jti(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let stored: Option<String> = sqlx::query_scalar(
            "INSERT INTO assertion_jtis (client_id, jti, expires_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (client_id, jti) DO UPDATE SET expires_at = excluded.expires_at
             WHERE assertion_jtis.expires_at < ?4
             RETURNING jti",
        )
        .bind(client_id)
        .bind(jti)
        .bind(to_millis(expires_at))
        .bind(to_millis(now))
        .fetch_optional(&self.pool)
        .await?;
        Ok(stored.is_some())
    }

    async fn prune_assertion_jtis(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let result = sqlx::query("DELETE FROM assertion_jtis WHERE expires_at < ?1")
            .bind(to_millis(before))
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected())
    }
}
