//! Users.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::PostgresStore;
use crate::store::users::{FailureCount, FailurePolicy, UserRecord, UserStore};
use crate::store::StoreError;

const COLUMNS: &str = "id, username, email, email_verified, given_name, family_name, disabled, \
    password_hash, failed_logins, locked_until, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct UserRow {
    id: Uuid,
    username: String,
    email: Option<String>,
    email_verified: bool,
    given_name: Option<String>,
    family_name: Option<String>,
    disabled: bool,
    password_hash: String,
    failed_logins: i32,
    locked_until: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<UserRow> for UserRecord {
    fn from(row: UserRow) -> Self {
        Self {
            id: row.id,
            username: row.username,
            email: row.email,
            email_verified: row.email_verified,
            given_name: row.given_name,
            family_name: row.family_name,
            disabled: row.disabled,
            password_hash: row.password_hash,
            failed_logins: row.failed_logins,
            locked_until: row.locked_until,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

#[async_trait]
impl UserStore for PostgresStore {
    async fn insert_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        let result = sqlx::query(
            "INSERT INTO users (id, username, email, email_verified, given_name, family_name,
                 disabled, password_hash, failed_logins, locked_until, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
             ON CONFLICT (username) DO NOTHING",
        )
        .bind(user.id)
        .bind(&user.username)
        .bind(&user.email)
        .bind(user.email_verified)
        .bind(&user.given_name)
        .bind(&user.family_name)
        .bind(user.disabled)
        .bind(&user.password_hash)
        .bind(user.failed_logins)
        .bind(user.locked_until)
        .bind(user.created_at)
        .bind(user.updated_at)
        .execute(&self.pool)
        .await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::AlreadyExists {
                what: "user",
                id: user.username.clone(),
            });
        }
        Ok(())
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        let row: Option<UserRow> =
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM users WHERE username = $1"))
                .bind(username)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(UserRecord::from))
    }

    async fn user_by_id(&self, id: Uuid) -> Result<Option<UserRecord>, StoreError> {
        let row: Option<UserRow> =
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM users WHERE id = $1"))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(UserRecord::from))
    }

    async fn list_users(&self) -> Result<Vec<UserRecord>, StoreError> {
        let rows: Vec<UserRow> =
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM users ORDER BY username"))
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(UserRecord::from).collect())
    }

    async fn set_user_disabled(
        &self,
        id: Uuid,
        disabled: bool,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query("UPDATE users SET disabled = $2, updated_at = $3 WHERE id = $1")
            .bind(id)
            .bind(disabled)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn set_password_hash(
        &self,
        id: Uuid,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE users SET password_hash = $2, updated_at = $3, failed_logins = 0,
                 last_failed_at = NULL, locked_until = NULL
             WHERE id = $1",
        )
        .bind(id)
        .bind(hash)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn upgrade_password_hash(
        &self,
        id: Uuid,
        old: &str,
        new: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE users SET password_hash = $3, updated_at = $4
             WHERE id = $1 AND password_hash = $2",
        )
        .bind(id)
        .bind(old)
        .bind(new)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn record_login_failure(
        &self,
        id: Uuid,
        policy: FailurePolicy,
    ) -> Result<Option<FailureCount>, StoreError> {
        // `counted` is the count including this failure. SET expressions
        // read the row as it was before the update.
        let counted = "(CASE WHEN last_failed_at IS NULL OR last_failed_at < $3
                             THEN 1 ELSE failed_logins + 1 END)";
        let sql = format!(
            "UPDATE users SET
                 failed_logins = CASE WHEN {counted} >= $4 THEN 0 ELSE {counted} END,
                 locked_until = CASE WHEN {counted} >= $4 THEN $5 ELSE locked_until END,
                 last_failed_at = $2
             WHERE id = $1
             RETURNING failed_logins, locked_until = $5 AND failed_logins = 0"
        );
        let row: Option<(i32, Option<bool>)> = sqlx::query_as(&sql)
            .bind(id)
            .bind(policy.now)
            .bind(policy.window_start)
            .bind(policy.threshold)
            .bind(policy.lock_until)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|(failed_logins, locked_now)| FailureCount {
            failed_logins,
            locked_now: locked_now.unwrap_or(false),
        }))
    }

    async fn clear_login_failures(&self, id: Uuid) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE users SET failed_logins = 0, last_failed_at = NULL
             WHERE id = $1 AND failed_logins <> 0",
        )
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn set_locked_until(
        &self,
        id: Uuid,
        until: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query("UPDATE users SET locked_until = $2 WHERE id = $1")
            .bind(id)
            .bind(until)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() == 1)
    }
}
