//! Consent decisions: the scopes each user approved for each client.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::StoreError;

#[async_trait]
pub trait ConsentStore {
    /// Returns the scopes `user_id` approved for `client_id` (empty if none).
    async fn consented_scopes(
        &self,
        user_id: Uuid,
        client_id: &str,
    ) -> Result<Vec<String>, StoreError>;

    /// Replaces the approved scopes of `user_id` for `client_id`.
    async fn save_consent(
        &self,
        user_id: Uuid,
        client_id: &str,
        scopes: &[String],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
}
