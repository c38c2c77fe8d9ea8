//! Sessions.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{from_millis, to_millis, SqliteStore};
use crate::store::sessions::{SessionRecord, SessionStore};
use crate::store::{join_words, split_words, StoreError};

type SessionRow = (String, String, i64, String, i64, i64, i64);

#[async_trait]
impl SessionStore for SqliteStore {
    async fn insert_session(&self, session: &SessionRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions
                 (id_digest, user_id, auth_time, amr, created_at, last_seen_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .bind(&session.id_digest)
        .bind(session.user_id.to_string())
        .bind(to_millis(session.auth_time))
        .bind(join_words(&session.amr))
        .bind(to_millis(session.created_at))
        .bind(to_millis(session.last_seen_at))
        .bind(to_millis(session.expires_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn session(&self, id_digest: &str) -> Result<Option<SessionRecord>, StoreError> {
        let row: Option<SessionRow> = sqlx::query_as(
            "SELECT id_digest, user_id, auth_time, amr, created_at, last_seen_at, expires_at
             FROM sessions WHERE id_digest = ?1",
        )
        .bind(id_digest)
        .fetch_optional(&self.pool)
        .await?;
        let Some((id_digest, user_id, auth_time, amr, created_at, last_seen_at, expires_at)) = row
        else {
            return Ok(None);
        };
        let user_id = Uuid::parse_str(&user_id)
            .map_err(|err| StoreError::Database(sqlx::Error::Decode(Box::new(err))))?;
        Ok(Some(SessionRecord {
            id_digest,
            user_id,
            auth_time: from_millis(auth_time),
            amr: split_words(&amr),
            created_at: from_millis(created_at),
            last_seen_at: from_millis(last_seen_at),
            expires_at: from_millis(expires_at),
        }))
    }

    async fn touch_session(&self, id_digest: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE sessions SET last_seen_at = ?2 WHERE id_digest = ?1 AND last_seen_at < ?2",
        )
        .bind(id_digest)
        .bind(to_millis(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn delete_session(&self, id_digest: &str) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM sessions WHERE id_digest = ?1")
            .bind(id_digest)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn delete_user_sessions(&self, user_id: Uuid) -> Result<u64, StoreError> {
        let result = sqlx::query("DELETE FROM sessions WHERE user_id = ?1")
            .bind(user_id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected())
    }

    async fn delete_expired_sessions(
        &self,
        now: DateTime<Utc>,
        idle_before: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let result =
            sqlx::query("DELETE FROM sessions WHERE expires_at <= ?1 OR last_seen_at < ?2")
                .bind(to_millis(now))
                .bind(to_millis(idle_before))
                .execute(&self.pool)
                .await?;
        Ok(result.rows_affected())
    }
}
