//! Signing and encryption keys.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::PostgresStore;
use crate::store::keys::{KeyChanges, KeyStore, KeyTimes, StoredKey};
use crate::store::StoreError;

#[derive(sqlx::FromRow)]
struct KeyRow {
    kid: String,
    alg: String,
    key_use: String,
    public_jwk: String,
    sealed_private_key: Vec<u8>,
    created_at: DateTime<Utc>,
    activates_at: DateTime<Utc>,
    retires_at: Option<DateTime<Utc>>,
    removes_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

impl From<KeyRow> for StoredKey {
    fn from(row: KeyRow) -> Self {
        StoredKey {
            kid: row.kid,
            alg: row.alg,
            key_use: row.key_use,
            public_jwk: row.public_jwk,
            sealed_private_key: row.sealed_private_key,
            times: KeyTimes {
                created_at: row.created_at,
                activates_at: row.activates_at,
                retires_at: row.retires_at,
                removes_at: row.removes_at,
                revoked_at: row.revoked_at,
            },
        }
    }
}

#[async_trait]
impl KeyStore for PostgresStore {
    async fn jose_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        let rows: Vec<KeyRow> = sqlx::query_as(
            "SELECT kid, alg, key_use, public_jwk, sealed_private_key, created_at,
                    activates_at, retires_at, removes_at, revoked_at
             FROM jose_keys ORDER BY created_at, kid",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(StoredKey::from).collect())
    }

    async fn apply_key_changes(&self, changes: &KeyChanges) -> Result<(), StoreError> {
        let mut transaction = self.pool.begin().await?;
        for key in &changes.inserted {
            sqlx::query(
                "INSERT INTO jose_keys (kid, alg, key_use, public_jwk, sealed_private_key,
                     created_at, activates_at, retires_at, removes_at, revoked_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(&key.kid)
            .bind(&key.alg)
            .bind(&key.key_use)
            .bind(&key.public_jwk)
            .bind(&key.sealed_private_key)
            .bind(key.times.created_at)
            .bind(key.times.activates_at)
            .bind(key.times.retires_at)
            .bind(key.times.removes_at)
            .bind(key.times.revoked_at)
            .execute(&mut *transaction)
            .await?;
        }
        for (kid, times) in &changes.updated {
            let result = sqlx::query(
                "UPDATE jose_keys SET activates_at = $2, retires_at = $3, removes_at = $4,
                     revoked_at = $5
                 WHERE kid = $1",
            )
            .bind(kid)
            .bind(times.activates_at)
            .bind(times.retires_at)
            .bind(times.removes_at)
            .bind(times.revoked_at)
            .execute(&mut *transaction)
            .await?;
            if result.rows_affected() != 1 {
                return Err(StoreError::NotFound {
                    what: "key",
                    id: kid.clone(),
                });
            }
        }
        for kid in &changes.deleted {
            sqlx::query("DELETE FROM jose_keys WHERE kid = $1")
                .bind(kid)
                .execute(&mut *transaction)
                .await?;
        }
        transaction.commit().await?;
        Ok(())
    }
}
