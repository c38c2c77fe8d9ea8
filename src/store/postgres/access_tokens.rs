//! Access-token records.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::PostgresStore;
use crate::store::access_tokens::{AccessTokenKey, AccessTokenRecord, AccessTokenStore};
use crate::store::StoreError;

#[derive(sqlx::FromRow)]
struct Row {
    jti: String,
    digest: String,
    client_id: String,
    subject: String,
    grant_id: Option<String>,
    grant_type: String,
    audience: String,
    scope: String,
    issued_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

impl From<Row> for AccessTokenRecord {
    fn from(row: Row) -> Self {
        Self {
            jti: row.jti,
            digest: row.digest,
            client_id: row.client_id,
            subject: row.subject,
            grant_id: row.grant_id,
            grant_type: row.grant_type,
            audience: row.audience,
            scope: row.scope,
            issued_at: row.issued_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
        }
    }
}

impl PostgresStore {
    /// Returns the `jti` of the record `key` finds: the key's own, or for a
    /// token without one in its header, that of the record marked to be
    /// found by digest. The caller still matches the digest.
    async fn record_jti(&self, key: &AccessTokenKey) -> Result<Option<String>, StoreError> {
        if let Some(jti) = &key.jti {
            return Ok(Some(jti.clone()));
        }
        let jti = sqlx::query_scalar(
            "SELECT jti FROM access_tokens WHERE digest = $1 AND lookup_by_digest",
        )
        .bind(&key.digest)
        .fetch_optional(&self.pool)
        .await?;
        Ok(jti)
    }
}

#[async_trait]
impl AccessTokenStore for PostgresStore {
    /// Binds one array per column and inserts their rows with `UNNEST`,
    /// so a batch of any size is one round trip.
    async fn insert_access_tokens(&self, records: &[AccessTokenRecord]) -> Result<(), StoreError> {
        fn column<'a, T>(
            records: &'a [AccessTokenRecord],
            field: impl Fn(&'a AccessTokenRecord) -> T,
        ) -> Vec<T> {
            records.iter().map(field).collect()
        }
        sqlx::query(
            "INSERT INTO access_tokens (jti, digest, client_id, subject, grant_id, grant_type,
                 audience, scope, issued_at, expires_at, revoked_at, lookup_by_digest)
             SELECT *, FALSE FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[],
                 $5::text[], $6::text[], $7::text[], $8::text[], $9::timestamptz[],
                 $10::timestamptz[], $11::timestamptz[])",
        )
        .bind(column(records, |record| record.jti.as_str()))
        .bind(column(records, |record| record.digest.as_str()))
        .bind(column(records, |record| record.client_id.as_str()))
        .bind(column(records, |record| record.subject.as_str()))
        .bind(column(records, |record| record.grant_id.as_deref()))
        .bind(column(records, |record| record.grant_type.as_str()))
        .bind(column(records, |record| record.audience.as_str()))
        .bind(column(records, |record| record.scope.as_str()))
        .bind(column(records, |record| record.issued_at))
        .bind(column(records, |record| record.expires_at))
        .bind(column(records, |record| record.revoked_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn find_access_token(
        &self,
        key: &AccessTokenKey,
    ) -> Result<Option<AccessTokenRecord>, StoreError> {
        let Some(jti) = self.record_jti(key).await? else {
            return Ok(None);
        };
        // A token recorded while its grant was being revoked can miss the
        // revocation's update, so the grant's revocation counts too.
        let row: Option<Row> = sqlx::query_as(
            "SELECT a.jti, a.digest, a.client_id, a.subject, a.grant_id, a.grant_type,
                 a.audience, a.scope, a.issued_at, a.expires_at,
                 COALESCE(a.revoked_at, g.revoked_at) AS revoked_at
             FROM access_tokens a LEFT JOIN grants g ON g.id = a.grant_id
             WHERE a.jti = $1 AND a.digest = $2",
        )
        .bind(jti)
        .bind(&key.digest)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(AccessTokenRecord::from))
    }

    async fn revoke_access_token(
        &self,
        key: &AccessTokenKey,
        client_id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let Some(jti) = self.record_jti(key).await? else {
            return Ok(false);
        };
        let result = sqlx::query(
            "UPDATE access_tokens SET revoked_at = $4
             WHERE jti = $1 AND digest = $2 AND client_id = $3 AND revoked_at IS NULL",
        )
        .bind(jti)
        .bind(&key.digest)
        .bind(client_id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn revoke_grant_access_tokens(
        &self,
        grant_id: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let result = sqlx::query(
            "UPDATE access_tokens SET revoked_at = $2 WHERE grant_id = $1 AND revoked_at IS NULL",
        )
        .bind(grant_id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected())
    }

    async fn revoke_client_access_tokens(
        &self,
        client_id: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        // NOTE: no index covers `client_id`, so this scans the table; it
        // runs only when a client is deleted.
        let result = sqlx::query(
            "UPDATE access_tokens SET revoked_at = $2 WHERE client_id = $1 AND revoked_at IS NULL",
        )
        .bind(client_id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected())
    }

    async fn prune_access_tokens(
        &self,
        before: DateTime<Utc>,
        batch: u32,
    ) -> Result<u64, StoreError> {
        let result = sqlx::query(
            "DELETE FROM access_tokens WHERE jti IN (
                 SELECT jti FROM access_tokens WHERE expires_at < $1 LIMIT $2
                 FOR UPDATE SKIP LOCKED)",
        )
        .bind(before)
        .bind(i64::from(batch))
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected())
    }
}
