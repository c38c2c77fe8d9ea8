//! Users.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{from_millis, to_millis, SqliteStore};
use crate::store::users::{FailureCount, FailurePolicy, UserRecord, UserStore};
use crate::store::StoreError;

const COLUMNS: &str = "id, username, email, email_verified, given_name, family_name, disabled, \
    password_hash, failed_logins, locked_until, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct UserRow {
    id: String,
    username: String,
    email: Option<String>,
    email_verified: bool,
    given_name: Option<String>,
    family_name: Option<String>,
    disabled: bool,
    password_hash: String,
    failed_logins: i32,
    locked_until: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<UserRow> for UserRecord {
    type Error = StoreError;

    fn try_from(row: UserRow) -> Result<Self, StoreError> {
        let id = Uuid::parse_str(&row.id)
            .map_err(|err| StoreError::Database(sqlx::Error::Decode(Box::new(err))))?;
        Ok(Self {
            id,
            username: row.username,
            email: row.email,
            email_verified: row.email_verified,
            given_name: row.given_name,
            family_name: row.family_name,
            disabled: row.disabled,
            password_hash: row.password_hash,
            failed_logins: row.failed_logins,
            locked_until: row.locked_until.map(from_millis),
            created_at: from_millis(row.created_at),
            updated_at: from_millis(row.updated_at),
        })
    }
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn insert_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        let result = sqlx::query(
            "INSERT INTO users (id, username, email, email_verified, given_name, family_name,
                 disabled, password_hash, failed_logins, locked_until, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
             ON CONFLICT (username) DO NOTHING",
        )
        .bind(user.id.to_string())
        .bind(&user.username)
        .bind(&user.email)
        .bind(user.email_verified)
        .bind(&user.given_name)
        .bind(&user.family_name)
        .bind(user.disabled)
        .bind(&user.password_hash)
        .bind(user.failed_logins)
        .bind(user.locked_until.map(to_millis))
        .bind(to_millis(user.created_at))
        .bind(to_millis(user.updated_at))
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
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM users WHERE username = ?1"))
                .bind(username)
                .fetch_optional(&self.pool)
                .await?;
        row.map(UserRecord::try_from).transpose()
    }

    async fn user_by_id(&self, id: Uuid) -> Result<Option<UserRecord>, StoreError> {
        let row: Option<UserRow> =
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM users WHERE id = ?1"))
                .bind(id.to_string())
                .fetch_optional(&self.pool)
                .await?;
        row.map(UserRecord::try_from).transpose()
    }

    async fn list_users(&self) -> Result<Vec<UserRecord>, StoreError> {
        let rows: Vec<UserRow> =
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM users ORDER BY username"))
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter().map(UserRecord::try_from).collect()
    }

    async fn set_user_disabled(
        &self,
        id: Uuid,
        disabled: bool,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query("UPDATE users SET disabled = ?2, updated_at = ?3 WHERE id = ?1")
            .bind(id.to_string())
            .bind(disabled)
            .bind(to_millis(now))
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
            "UPDATE users SET password_hash = ?2, updated_at = ?3, failed_logins = 0,
                 last_failed_at = NULL, locked_until = NULL
             WHERE id = ?1",
        )
        .bind(id.to_string())
        .bind(hash)
        .bind(to_millis(now))
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
            "UPDATE users SET password_hash = ?3, updated_at = ?4
             WHERE id = ?1 AND password_hash = ?2",
        )
        .bind(id.to_string())
        .bind(old)
        .bind(new)
        .bind(to_millis(now))
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
        let counted = "(CASE WHEN last_failed_at IS NULL OR last_failed_at < ?3
                             THEN 1 ELSE failed_logins + 1 END)";
        let sql = format!(
            "UPDATE users SET
                 failed_logins = CASE WHEN {counted} >= ?4 THEN 0 ELSE {counted} END,
                 locked_until = CASE WHEN {counted} >= ?4 THEN ?5 ELSE locked_until END,
                 last_failed_at = ?2
             WHERE id = ?1
             RETURNING failed_logins, COALESCE(locked_until = ?5 AND failed_logins = 0, 0)"
        );
        let row: Option<(i32, bool)> = sqlx::query_as(&sql)
            .bind(id.to_string())
            .bind(to_millis(policy.now))
            .bind(to_millis(policy.window_start))
            .bind(policy.threshold)
            .bind(to_millis(policy.lock_until))
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|(failed_logins, locked_now)| FailureCount {
            failed_logins,
            locked_now,
        }))
    }

    async fn clear_login_failures(&self, id: Uuid) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE users SET failed_logins = 0, last_failed_at = NULL
             WHERE id = ?1 AND failed_logins <> 0",
        )
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn set_locked_until(
        &self,
        id: Uuid,
        until: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query("UPDATE users SET locked_until = ?2 WHERE id = ?1")
            .bind(id.to_string())
            .bind(until.map(to_millis))
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() == 1)
    }
}
