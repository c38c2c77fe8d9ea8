//! Access-token records.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{from_millis, to_millis, SqliteStore};
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
    issued_at: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
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
            issued_at: from_millis(row.issued_at),
            expires_at: from_millis(row.expires_at),
            revoked_at: row.revoked_at.map(from_millis),
        }
    }
}

/// One record as an element of the JSON array that
/// [`AccessTokenStore::insert_access_tokens`] binds, serialized straight
/// from the borrowed record.
#[derive(serde::Serialize)]
struct JsonRow<'a> {
    jti: &'a str,
    digest: &'a str,
    client_id: &'a str,
    subject: &'a str,
    grant_id: Option<&'a str>,
    grant_type: &'a str,
    audience: &'a str,
    scope: &'a str,
    issued_at: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
}

impl<'a> From<&'a AccessTokenRecord> for JsonRow<'a> {
    fn from(record: &'a AccessTokenRecord) -> Self {
        Self {
            jti: &record.jti,
            digest: &record.digest,
            client_id: &record.client_id,
            subject: &record.subject,
            grant_id: record.grant_id.as_deref(),
            grant_type: &record.grant_type,
            audience: &record.audience,
            scope: &record.scope,
            issued_at: to_millis(record.issued_at),
            expires_at: to_millis(record.expires_at),
            revoked_at: record.revoked_at.map(to_millis),
        }
    }
}

impl SqliteStore {
    /// Returns the `jti` of the record `key` finds: the key's own, or for a
    /// token without one in its header, that of the record marked to be
    /// found by digest. The caller still matches the digest.
    async fn record_jti(&self, key: &AccessTokenKey) -> Result<Option<String>, StoreError> {
        if let Some(jti) = &key.jti {
            return Ok(Some(jti.clone()));
        }
        let jti = sqlx::query_scalar(
            "SELECT jti FROM access_tokens WHERE digest = ?1 AND lookup_by_digest = 1",
        )
        .bind(&key.digest)
        .fetch_optional(&self.pool)
        .await?;
        Ok(jti)
    }
}

#[async_trait]
impl AccessTokenStore for SqliteStore {
    /// Sends the records as one JSON array that `json_each` turns into
    /// rows, so a batch of any size is one fixed, cached statement.
    async fn insert_access_tokens(&self, records: &[AccessTokenRecord]) -> Result<(), StoreError> {
        let rows: Vec<JsonRow<'_>> = records.iter().map(JsonRow::from).collect();
        let rows = serde_json::to_string(&rows)
            .map_err(|error| StoreError::Database(sqlx::Error::Encode(Box::new(error))))?;
        sqlx::query(
            "INSERT INTO access_tokens (jti, digest, client_id, subject, grant_id, grant_type,
                 audience, scope, issued_at, expires_at, revoked_at, lookup_by_digest)
             SELECT value ->> 'jti', value ->> 'digest', value ->> 'client_id',
                 value ->> 'subject', value ->> 'grant_id', value ->> 'grant_type',
                 value ->> 'audience', value ->> 'scope', value ->> 'issued_at',
                 value ->> 'expires_at', value ->> 'revoked_at', 0
             FROM json_each(?1)",
        )
        .bind(rows)
        .execute(self.token_writer())
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
             WHERE a.jti = ?1 AND a.digest = ?2",
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
            "UPDATE access_tokens SET revoked_at = ?4
             WHERE jti = ?1 AND digest = ?2 AND client_id = ?3 AND revoked_at IS NULL",
        )
        .bind(jti)
        .bind(&key.digest)
        .bind(client_id)
        .bind(to_millis(now))
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
            "UPDATE access_tokens SET revoked_at = ?2 WHERE grant_id = ?1 AND revoked_at IS NULL",
        )
        .bind(grant_id)
        .bind(to_millis(now))
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
            "UPDATE access_tokens SET revoked_at = ?2 WHERE client_id = ?1 AND revoked_at IS NULL",
        )
        .bind(client_id)
        .bind(to_millis(now))
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected())
    }

    /// Runs on the token writer's connection, so that the batches of
    /// inserts and of deletes take turns there. On separate connections, an
    /// insert that met a delete's write lock slept in SQLite's busy handler
    /// (p99 126 ms during pruning in `bench/run`).
    async fn prune_access_tokens(
        &self,
        before: DateTime<Utc>,
        batch: u32,
    ) -> Result<u64, StoreError> {
        let result = sqlx::query(
            "DELETE FROM access_tokens WHERE rowid IN (
                 SELECT rowid FROM access_tokens WHERE expires_at < ?1 LIMIT ?2)",
        )
        .bind(to_millis(before))
        .bind(i64::from(batch))
        .execute(self.token_writer())
        .await?;
        Ok(result.rows_affected())
    }
}
