//! Consent decisions.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{from_millis, to_millis, SqliteStore};
use crate::store::consents::{ConsentRecord, ConsentStore};
use crate::store::grants::AuthorizationFilter;
use crate::store::{join_words, split_words, StoreError};

/// A consent as stored: times in Unix milliseconds, the user id as text.
#[derive(sqlx::FromRow)]
struct ConsentRow {
    user_id: String,
    client_id: String,
    scopes: String,
    updated_at: i64,
}

impl TryFrom<ConsentRow> for ConsentRecord {
    type Error = StoreError;

    fn try_from(row: ConsentRow) -> Result<Self, StoreError> {
        let user_id = Uuid::parse_str(&row.user_id).map_err(|err| StoreError::Malformed {
            what: "consent",
            message: err.to_string(),
        })?;
        Ok(Self {
            user_id,
            client_id: row.client_id,
            scopes: split_words(&row.scopes),
            updated_at: from_millis(row.updated_at),
        })
    }
}

#[async_trait]
impl ConsentStore for SqliteStore {
    async fn consented_scopes(
        &self,
        user_id: Uuid,
        client_id: &str,
    ) -> Result<Vec<String>, StoreError> {
        let scopes: Option<String> =
            sqlx::query_scalar("SELECT scopes FROM consents WHERE user_id = ?1 AND client_id = ?2")
                .bind(user_id.to_string())
                .bind(client_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(scopes.as_deref().map(split_words).unwrap_or_default())
    }

    async fn save_consent(
        &self,
        user_id: Uuid,
        client_id: &str,
        scopes: &[String],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO consents (user_id, client_id, scopes, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (user_id, client_id)
             DO UPDATE SET scopes = excluded.scopes, updated_at = excluded.updated_at",
        )
        .bind(user_id.to_string())
        .bind(client_id)
        .bind(join_words(scopes))
        .bind(to_millis(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn consents(
        &self,
        filter: &AuthorizationFilter,
    ) -> Result<Vec<ConsentRecord>, StoreError> {
        let rows: Vec<ConsentRow> = sqlx::query_as(
            "SELECT user_id, client_id, scopes, updated_at FROM consents
             WHERE (?1 IS NULL OR user_id = ?1) AND (?2 IS NULL OR client_id = ?2)
             ORDER BY updated_at DESC, client_id",
        )
        .bind(filter.user_id.map(|id| id.to_string()))
        .bind(filter.client_id.as_deref())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(ConsentRecord::try_from).collect()
    }

    async fn delete_consents(&self, filter: &AuthorizationFilter) -> Result<u64, StoreError> {
        let result = sqlx::query("DELETE FROM consents WHERE (?1 IS NULL OR user_id = ?1) AND (?2 IS NULL OR client_id = ?2)")
            .bind(filter.user_id.map(|id| id.to_string()))
            .bind(filter.client_id.as_deref())
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected())
    }
}
