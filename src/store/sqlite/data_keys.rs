//! Data keys.

use async_trait::async_trait;

use super::{from_millis, to_millis, SqliteStore};
use crate::store::data_keys::{DataKeyStore, WrappedDataKey};
use crate::store::StoreError;

#[async_trait]
impl DataKeyStore for SqliteStore {
    async fn data_keys(&self) -> Result<Vec<WrappedDataKey>, StoreError> {
        let rows: Vec<(String, Vec<u8>, i64)> =
            sqlx::query_as("SELECT purpose, wrapped, created_at FROM data_keys ORDER BY purpose")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(purpose, wrapped, created_at)| WrappedDataKey {
                purpose,
                wrapped,
                created_at: from_millis(created_at),
            })
            .collect())
    }

    async fn insert_data_key(&self, key: &WrappedDataKey) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "INSERT INTO data_keys (purpose, wrapped, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (purpose) DO NOTHING",
        )
        .bind(&key.purpose)
        .bind(&key.wrapped)
        .bind(to_millis(key.created_at))
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn rewrap_data_keys(&self, keys: &[WrappedDataKey]) -> Result<(), StoreError> {
        let mut transaction = self.begin_write().await?;
        for key in keys {
            let result = sqlx::query("UPDATE data_keys SET wrapped = ?2 WHERE purpose = ?1")
                .bind(&key.purpose)
                .bind(&key.wrapped)
                .execute(&mut *transaction)
                .await?;
            if result.rows_affected() != 1 {
                return Err(StoreError::NotFound {
                    what: "data key",
                    id: key.purpose.clone(),
                });
            }
        }
        transaction.commit().await?;
        Ok(())
    }
}
