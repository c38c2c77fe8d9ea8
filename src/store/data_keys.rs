//! Data keys wrapped under the master key (see `crate::crypto`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;

/// One data key as stored: only its wrapped (encrypted) form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrappedDataKey {
    pub purpose: String,
    /// Nonce followed by the AES-256-GCM ciphertext of the key.
    pub wrapped: Vec<u8>,
    pub created_at: DateTime<Utc>,
}

#[async_trait]
pub trait DataKeyStore {
    /// Returns every stored data key.
    async fn data_keys(&self) -> Result<Vec<WrappedDataKey>, StoreError>;

    /// Stores `key` unless one with its purpose exists; returns whether it
    /// was stored. Instances starting together thus agree on one key.
    async fn insert_data_key(&self, key: &WrappedDataKey) -> Result<bool, StoreError>;

    /// Replaces the wrapped form of each given key in one transaction, for
    /// a master-key rotation. Fails if any purpose is not stored.
    async fn rewrap_data_keys(&self, keys: &[WrappedDataKey]) -> Result<(), StoreError>;
}
