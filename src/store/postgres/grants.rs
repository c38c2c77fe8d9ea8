//! Grants, pending authorization requests, codes and refresh tokens.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::PostgresStore;
use crate::store::grants::{
    AuthorizationCodeRecord, AuthorizationFilter, CodeConsumption, GrantRecord, GrantStore,
    PendingAuthorization, RefreshRotation, RefreshTokenRecord,
};
use crate::store::{join_words, split_words, StoreError};

#[derive(sqlx::FromRow)]
struct GrantRow {
    id: String,
    client_id: String,
    user_id: Uuid,
    scopes: String,
    resource: Option<String>,
    auth_time: DateTime<Utc>,
    amr: String,
    sid: String,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

impl TryFrom<GrantRow> for GrantRecord {
    type Error = StoreError;

    fn try_from(row: GrantRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: row.id,
            client_id: row.client_id,
            user_id: row.user_id,
            scopes: split_words(&row.scopes),
            resource: row.resource,
            auth_time: row.auth_time,
            amr: split_words(&row.amr),
            sid: row.sid,
            created_at: row.created_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct CodeRow {
    digest: String,
    grant_id: String,
    client_id: String,
    redirect_uri: String,
    code_challenge: Option<String>,
    nonce: Option<String>,
    expires_at: DateTime<Utc>,
    consumed_at: Option<DateTime<Utc>>,
}

impl From<CodeRow> for AuthorizationCodeRecord {
    fn from(row: CodeRow) -> Self {
        Self {
            digest: row.digest,
            grant_id: row.grant_id,
            client_id: row.client_id,
            redirect_uri: row.redirect_uri,
            code_challenge: row.code_challenge,
            nonce: row.nonce,
            expires_at: row.expires_at,
            consumed_at: row.consumed_at,
        }
    }
}

#[derive(sqlx::FromRow)]
struct RefreshRow {
    digest: String,
    grant_id: String,
    client_id: String,
    issued_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    rotated_at: Option<DateTime<Utc>>,
}

impl From<RefreshRow> for RefreshTokenRecord {
    fn from(row: RefreshRow) -> Self {
        Self {
            digest: row.digest,
            grant_id: row.grant_id,
            client_id: row.client_id,
            issued_at: row.issued_at,
            expires_at: row.expires_at,
            rotated_at: row.rotated_at,
        }
    }
}

const CODE_COLUMNS: &str =
    "digest, grant_id, client_id, redirect_uri, code_challenge, nonce, expires_at, consumed_at";
const REFRESH_COLUMNS: &str = "digest, grant_id, client_id, issued_at, expires_at, rotated_at";

#[async_trait]
impl GrantStore for PostgresStore {
    async fn insert_pending_authorization(
        &self,
        pending: &PendingAuthorization,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO authorization_requests (id_digest, tx_digest, client_id, request, expires_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&pending.id_digest)
        .bind(&pending.tx_digest)
        .bind(&pending.client_id)
        .bind(&pending.request)
        .bind(pending.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn pending_authorization(
        &self,
        id_digest: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<PendingAuthorization>, StoreError> {
        let row: Option<(String, String, String, String, DateTime<Utc>)> = sqlx::query_as(
            "SELECT id_digest, tx_digest, client_id, request, expires_at
             FROM authorization_requests WHERE id_digest = $1 AND expires_at > $2",
        )
        .bind(id_digest)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(
            |(id_digest, tx_digest, client_id, request, expires_at)| PendingAuthorization {
                id_digest,
                tx_digest,
                client_id,
                request,
                expires_at,
            },
        ))
    }

    async fn delete_pending_authorization(&self, id_digest: &str) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM authorization_requests WHERE id_digest = $1")
            .bind(id_digest)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn insert_grant(&self, grant: &GrantRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO grants (id, client_id, user_id, scopes, resource, auth_time, amr, sid,
                 created_at, expires_at, revoked_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&grant.id)
        .bind(&grant.client_id)
        .bind(grant.user_id)
        .bind(join_words(&grant.scopes))
        .bind(&grant.resource)
        .bind(grant.auth_time)
        .bind(join_words(&grant.amr))
        .bind(&grant.sid)
        .bind(grant.created_at)
        .bind(grant.expires_at)
        .bind(grant.revoked_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn grant(&self, id: &str) -> Result<Option<GrantRecord>, StoreError> {
        let row: Option<GrantRow> = sqlx::query_as("SELECT * FROM grants WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(GrantRecord::try_from).transpose()
    }

    async fn revoke_grant(&self, id: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        // `FOR UPDATE` conflicts with the key-share lock that the foreign
        // key takes when a refresh token is inserted (`UPDATE` alone takes
        // `FOR NO KEY UPDATE`, which does not). So an insert either commits
        // before the `DELETE` below reads the table, or waits for this
        // transaction to commit and then finds the grant revoked. Without
        // it, a token inserted between the `DELETE` and the commit stayed
        // behind. The row is locked even when already revoked, so that a
        // repeated revocation waits for inserts in flight too.
        sqlx::query("SELECT id FROM grants WHERE id = $1 FOR UPDATE")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let revoked =
            sqlx::query("UPDATE grants SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
        sqlx::query("DELETE FROM refresh_tokens WHERE grant_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE access_tokens SET revoked_at = $2 WHERE grant_id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(revoked)
    }

    async fn live_grants(
        &self,
        filter: &AuthorizationFilter,
        now: DateTime<Utc>,
    ) -> Result<Vec<GrantRecord>, StoreError> {
        let rows: Vec<GrantRow> = sqlx::query_as(
            "SELECT * FROM grants
             WHERE ($1::uuid IS NULL OR user_id = $1) AND ($2::text IS NULL OR client_id = $2)
               AND revoked_at IS NULL AND expires_at > $3
             ORDER BY created_at DESC, id",
        )
        .bind(filter.user_id)
        .bind(filter.client_id.as_deref())
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(GrantRecord::try_from).collect()
    }

    async fn revoke_grants(
        &self,
        filter: &AuthorizationFilter,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Locked `FOR UPDATE` first, for the reason given in `revoke_grant`,
        // and in id order, so two revocations of overlapping sets cannot
        // deadlock.
        let locked: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM grants
             WHERE ($1::uuid IS NULL OR user_id = $1) AND ($2::text IS NULL OR client_id = $2)
               AND revoked_at IS NULL
             ORDER BY id FOR UPDATE",
        )
        .bind(filter.user_id)
        .bind(filter.client_id.as_deref())
        .fetch_all(&mut *tx)
        .await?;
        let ids: Vec<String> = sqlx::query_scalar(
            "UPDATE grants SET revoked_at = $2 WHERE id = ANY($1) AND revoked_at IS NULL
             RETURNING id",
        )
        .bind(&locked)
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        for id in &ids {
            sqlx::query("DELETE FROM refresh_tokens WHERE grant_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "UPDATE access_tokens SET revoked_at = $2
                 WHERE grant_id = $1 AND revoked_at IS NULL",
            )
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(ids)
    }

    async fn insert_authorization_code(
        &self,
        code: &AuthorizationCodeRecord,
    ) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO authorization_codes ({CODE_COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(&code.digest)
        .bind(&code.grant_id)
        .bind(&code.client_id)
        .bind(&code.redirect_uri)
        .bind(&code.code_challenge)
        .bind(&code.nonce)
        .bind(code.expires_at)
        .bind(code.consumed_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn authorization_code(
        &self,
        digest: &str,
        client_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<AuthorizationCodeRecord>, StoreError> {
        let row: Option<CodeRow> = sqlx::query_as(&format!(
            "SELECT {CODE_COLUMNS} FROM authorization_codes
             WHERE digest = $1 AND client_id = $2
               AND (consumed_at IS NOT NULL OR expires_at > $3)"
        ))
        .bind(digest)
        .bind(client_id)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(Into::into))
    }

    async fn consume_authorization_code(
        &self,
        digest: &str,
        client_id: &str,
        now: DateTime<Utc>,
    ) -> Result<CodeConsumption, StoreError> {
        let consumed: Option<CodeRow> = sqlx::query_as(&format!(
            "UPDATE authorization_codes SET consumed_at = $3
             WHERE digest = $1 AND client_id = $2 AND consumed_at IS NULL AND expires_at > $3
             RETURNING {CODE_COLUMNS}"
        ))
        .bind(digest)
        .bind(client_id)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = consumed {
            return Ok(CodeConsumption::Consumed(row.into()));
        }
        let replayed: Option<String> = sqlx::query_scalar(
            "SELECT grant_id FROM authorization_codes
             WHERE digest = $1 AND client_id = $2 AND consumed_at IS NOT NULL",
        )
        .bind(digest)
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match replayed {
            Some(grant_id) => CodeConsumption::Replayed { grant_id },
            None => CodeConsumption::Unknown,
        })
    }

    async fn insert_refresh_token(&self, token: &RefreshTokenRecord) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO refresh_tokens ({REFRESH_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
        ))
        .bind(&token.digest)
        .bind(&token.grant_id)
        .bind(&token.client_id)
        .bind(token.issued_at)
        .bind(token.expires_at)
        .bind(token.rotated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn refresh_token(
        &self,
        digest: &str,
        client_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<RefreshTokenRecord>, StoreError> {
        let row: Option<RefreshRow> = sqlx::query_as(&format!(
            "SELECT {REFRESH_COLUMNS} FROM refresh_tokens
             WHERE digest = $1 AND client_id = $2
               AND (rotated_at IS NOT NULL OR expires_at > $3)"
        ))
        .bind(digest)
        .bind(client_id)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(Into::into))
    }

    async fn rotate_refresh_token(
        &self,
        digest: &str,
        client_id: &str,
        now: DateTime<Utc>,
    ) -> Result<RefreshRotation, StoreError> {
        let rotated: Option<RefreshRow> = sqlx::query_as(&format!(
            "UPDATE refresh_tokens SET rotated_at = $3
             WHERE digest = $1 AND client_id = $2 AND rotated_at IS NULL AND expires_at > $3
             RETURNING {REFRESH_COLUMNS}"
        ))
        .bind(digest)
        .bind(client_id)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = rotated {
            return Ok(RefreshRotation::Rotated(row.into()));
        }
        let earlier: Option<RefreshRow> = sqlx::query_as(&format!(
            "SELECT {REFRESH_COLUMNS} FROM refresh_tokens
             WHERE digest = $1 AND client_id = $2 AND rotated_at IS NOT NULL"
        ))
        .bind(digest)
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match earlier {
            Some(row) => RefreshRotation::AlreadyRotated(row.into()),
            None => RefreshRotation::Unknown,
        })
    }
}
