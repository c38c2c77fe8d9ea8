//! User accounts and their failed-login counters.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::StoreError;

/// One user as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRecord {
    pub id: Uuid,
    /// The normalised username (see `crate::accounts::users`).
    pub username: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub disabled: bool,
    /// argon2id PHC string.
    pub password_hash: String,
    pub failed_logins: i32,
    pub locked_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The account's state after a failed login was counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailureCount {
    /// Failures counted in the current window (0 right after a lockout).
    pub failed_logins: i32,
    /// True when this failure reached the threshold and locked the account.
    pub locked_now: bool,
}

/// How a failed login is counted: failures older than `window_start` are
/// forgotten, and the failure that reaches `threshold` locks the account
/// until `lock_until` and restarts the count.
#[derive(Clone, Copy, Debug)]
pub struct FailurePolicy {
    pub now: DateTime<Utc>,
    pub window_start: DateTime<Utc>,
    pub threshold: i32,
    pub lock_until: DateTime<Utc>,
}

#[async_trait]
pub trait UserStore {
    /// Inserts a new user; fails with [`StoreError::AlreadyExists`] when the
    /// username is taken.
    async fn insert_user(&self, user: &UserRecord) -> Result<(), StoreError>;

    /// Returns the user with this normalised username.
    async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>, StoreError>;

    async fn user_by_id(&self, id: Uuid) -> Result<Option<UserRecord>, StoreError>;

    /// Returns every user, ordered by username.
    async fn list_users(&self) -> Result<Vec<UserRecord>, StoreError>;

    /// Sets the disabled flag; returns whether the user exists.
    async fn set_user_disabled(
        &self,
        id: Uuid,
        disabled: bool,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Replaces the password hash and clears the failure count and any
    /// lockout; returns whether the user exists.
    async fn set_password_hash(
        &self,
        id: Uuid,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Replaces the password hash only if it is still `old`, so a rehash
    /// at login never overwrites a password changed meanwhile.
    async fn upgrade_password_hash(
        &self,
        id: Uuid,
        old: &str,
        new: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Counts one failed login in a single atomic statement.
    async fn record_login_failure(
        &self,
        id: Uuid,
        policy: FailurePolicy,
    ) -> Result<Option<FailureCount>, StoreError>;

    /// Clears the failure count after a successful login.
    async fn clear_login_failures(&self, id: Uuid) -> Result<(), StoreError>;

    /// Sets or lifts (`None`) a lockout directly, for operators and tests.
    async fn set_locked_until(
        &self,
        id: Uuid,
        until: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError>;
}
