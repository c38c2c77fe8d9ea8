//! Consent decisions.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::PostgresStore;
use crate::store::consents::ConsentStore;
use crate::store::{join_words, split_words, StoreError};

#[async_trait]
impl ConsentStore for PostgresStore {
    async fn consented_scopes(
        &self,
        user_id: Uuid,
        client_id: &str,
    ) -> Result<Vec<String>, StoreError> {
        let scopes: Option<String> =
            sqlx::query_scalar("SELECT scopes FROM consents WHERE user_id = $1 AND client_id = $2")
                .bind(user_id)
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
            "INSERT INTO consents (user_id, client_id, scopes, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (user_id, client_id)
             DO UPDATE SET scopes = EXCLUDED.scopes, updated_at = EXCLUDED.updated_at",
        )
        .bind(user_id)
        .bind(client_id)
        .bind(join_words(scopes))
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
