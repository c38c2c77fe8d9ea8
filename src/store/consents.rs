//! Consent decisions: the scopes each user approved for each client.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::grants::AuthorizationFilter;
use super::StoreError;

/// The scopes one user approved for one client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsentRecord {
    pub user_id: Uuid,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub updated_at: DateTime<Utc>,
}

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

    /// Returns the consents matching `filter`, newest first.
    async fn consents(
        &self,
        filter: &AuthorizationFilter,
    ) -> Result<Vec<ConsentRecord>, StoreError>;

    /// Deletes the consents matching `filter`; returns how many there were.
    async fn delete_consents(&self, filter: &AuthorizationFilter) -> Result<u64, StoreError>;
}
